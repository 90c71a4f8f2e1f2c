package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// cmdDiscrepancies lists the open discrepancies (all of them with --all), oldest first.
func cmdDiscrepancies(ctx context.Context, cfg Config, kind string, all, asJSON bool, stdout io.Writer, fail func(error) int) int {
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	ds, err := l.Discrepancies(ctx, store.DiscrepancyFilter{Kind: payment.Kind(kind), All: all})
	if err != nil {
		return fail(err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ds); err != nil {
			return fail(err)
		}
		return 0
	}
	for _, d := range ds {
		line := fmt.Sprintf("#%d  %s  %-22s %s  %s  %s", d.ID, d.DetectedAt.Format(time.RFC3339), d.Kind, d.PaymentID, d.Subject, d.Details)
		if d.ResolvedAt != nil {
			line += fmt.Sprintf("  resolved %s: %s", d.ResolvedAt.Format(time.RFC3339), d.Resolution)
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "%d discrepancies\n", len(ds))
	return 0
}

// cmdResolve marks one discrepancy resolved, with the operator's note of what was done.
func cmdResolve(ctx context.Context, cfg Config, operands []string, note string, stdout io.Writer, fail func(error) int) int {
	if len(operands) != 1 {
		return fail(errors.New(`usage: reconciler resolve <discrepancy id> --note "what was done"`))
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(operands[0], "#"), 10, 64)
	if err != nil {
		return fail(fmt.Errorf("discrepancy id %q: want a number", operands[0]))
	}
	if strings.TrimSpace(note) == "" {
		return fail(errors.New(`--note is required: say what was done ("refunded by hand, ticket 123")`))
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	if err := l.Update(ctx, func(tx *store.Tx) error { return tx.ResolveDiscrepancy(ctx, id, "by hand: "+note) }); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fail(fmt.Errorf("discrepancy %d: not found or already resolved", id))
		}
		return fail(err)
	}
	fmt.Fprintf(stdout, "discrepancy %d resolved\n", id)
	return 0
}
