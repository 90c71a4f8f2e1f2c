package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// cmdDiscrepancies lists the open discrepancies (all of them with --all), oldest first.
func cmdDiscrepancies(ctx context.Context, cfg Config, kind string, all, asJSON bool, stdout io.Writer, fail func(error) int) int {
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	if kind != "" && !slices.Contains(knownKinds(), kind) {
		return fail(badUsage("--kind %q is not a discrepancy kind; one of: %s", kind, strings.Join(knownKinds(), ", ")))
	}
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
	if len(ds) == 0 {
		fmt.Fprintln(stdout, nothing("discrepancies"))
		return 0
	}
	currencies := map[string]string{} // a payment's currency, read once: its details' amounts are in it
	for _, d := range ds {
		cur, ok := currencies[d.PaymentID]
		if !ok && d.PaymentID != "" {
			if p, err := l.Payment(ctx, d.PaymentID); err == nil {
				cur = p.Currency
			}
			currencies[d.PaymentID] = cur
		}
		line := fmt.Sprintf("#%d  %s  %-22s %s  %s  %s", d.ID, localTime(d.DetectedAt, cfg.ReportLocation), d.Kind, d.PaymentID, d.Subject,
			moneyDetails(d.Details, cur))
		if d.ResolvedAt != nil {
			line += fmt.Sprintf("  resolved %s: %s", localTime(*d.ResolvedAt, cfg.ReportLocation), d.Resolution)
		}
		fmt.Fprintln(stdout, line)
		writeHistory(stdout, "    ", d, cfg.ReportLocation)
	}
	fmt.Fprintf(stdout, "%d discrepancies\n", len(ds))
	return 0
}

// cmdResolve marks one discrepancy resolved, with the operator's note of what was done.
func cmdResolve(ctx context.Context, cfg Config, operands []string, note string, asJSON bool, stdout io.Writer, fail func(error) int) int {
	if len(operands) != 1 {
		return fail(badUsage("%s", `usage: reconciler resolve <discrepancy id> --note "what was done"`))
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(operands[0], "#"), 10, 64)
	if err != nil {
		return fail(badUsage("discrepancy id %q: want a number", operands[0]))
	}
	if strings.TrimSpace(note) == "" {
		return fail(badUsage("%s", `--note is required: say what was done ("refunded by hand, ticket 123")`))
	}
	r, err := openRoad(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer r.close()
	by := operatorName()
	res, err := r.outcome(reconcile.NewOperator(r.ledger, r.facts).Resolve(ctx, id, by, note))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fail(fmt.Errorf("discrepancy %d: %w", id, err))
		}
		if errors.Is(err, reconcile.ErrRefused) {
			return fail(fmt.Errorf("discrepancy %d not resolved: %w", id, err))
		}
		return fail(err)
	}
	resolution := "by hand (" + by + "): " + note
	if asJSON {
		return exitOf(writeJSON(stdout, map[string]any{"id": id, "resolved": true, "resolution": resolution, "fact": res}), fail)
	}
	fmt.Fprintf(stdout, "discrepancy %d resolved: %s\n", id, applied(res))
	return 0
}

// writeHistory prints the life of a discrepancy that was reopened, one step a line: the
// resolutions a later check undid are kept there with who made them and their note. Times are in loc.
func writeHistory(w io.Writer, indent string, d store.Discrepancy, loc *time.Location) {
	if d.Reopened == 0 {
		return
	}
	for _, e := range d.History {
		line := indent + localTime(e.At, loc) + "  " + e.Event
		if e.By != "" {
			line += " by " + e.By
		}
		if e.Note != "" {
			line += ": " + e.Note
		}
		fmt.Fprintln(w, line)
	}
}

// knownKinds lists every discrepancy kind the ledger raises, sorted.
func knownKinds() []string {
	kinds := []string{string(reconcile.KindStuck), string(payment.KindDisallowedTransition), string(payment.KindConflictingDuplicate),
		string(payment.KindUnknownStatus), string(payment.KindUnknownAtProvider), string(payment.KindClockSkew)}
	for _, k := range payment.MoneyKinds {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	return kinds
}
