package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/settle"
	"knetrecon/internal/statement"
)

// depositsUsage is deposits' synopsis.
const depositsUsage = "reconciler deposits --statement FILE [--layout FILE] [--columns date=…,amount=…,reference=…] [--sheet NAME] [--days N] [--json]"

// layoutOf is the layout a statement command reads its file with: a --layout file, then
// --columns (key=Header,… or @file) and --sheet over it; keys are the column keys it knows.
func layoutOf(f settleFlags, keys []string) (statement.Layout, error) {
	var layout statement.Layout
	if f.layout != "" {
		raw, err := os.ReadFile(f.layout)
		if err != nil {
			return layout, badUsage("--layout: %v", err)
		}
		if layout, err = statement.ParseLayout(raw); err != nil {
			return layout, badUsage("--layout %s: %v", f.layout, err)
		}
	}
	columns := f.columns
	if path, ok := strings.CutPrefix(columns, "@"); ok {
		// A mapping file: one key=Header a line (or comma-separated), # comments.
		raw, err := os.ReadFile(path)
		if err != nil {
			return layout, badUsage("--columns @file: %v", err)
		}
		var parts []string
		for _, line := range strings.Split(string(raw), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				parts = append(parts, line)
			}
		}
		columns = strings.Join(parts, ",")
	}
	cols, err := statement.ParseColumns(columns)
	if err != nil {
		return layout, badUsage("--columns: %v", err)
	}
	m := map[string]string{}
	for _, src := range []struct {
		flag string
		cols map[string]string
	}{{"--layout " + f.layout, layout.Columns}, {"--columns", cols}} {
		for k, h := range src.cols {
			if !contains(keys, k) {
				return layout, badUsage("%s: unknown column key %q (keys: %s)", src.flag, k, strings.Join(keys, ", "))
			}
			m[k] = h
		}
	}
	layout.Columns = m
	if f.sheet != "" {
		layout.Sheet = f.sheet
	}
	return layout, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// cmdDeposits matches the merchant's account statement against the deposits the settled bank
// statements promise, and records the run (as a fact, in every ledger).
func cmdDeposits(ctx context.Context, cfg Config, f settleFlags, asJSON bool, stdout io.Writer, fail func(error) int) int {
	if f.statement == "" {
		return fail(badUsage("usage: %s (keys: %s)", depositsUsage, strings.Join(settle.DepositKeys, ", ")))
	}
	if f.days < 0 {
		return fail(badUsage("--days %d: want 0 or more", f.days))
	}
	layout, err := layoutOf(f, settle.DepositKeys)
	if err != nil {
		return fail(err)
	}
	raw, err := os.ReadFile(f.statement)
	if err != nil {
		return fail(err)
	}
	o := settle.DepositOptions{File: filepath.Base(f.statement), Layout: layout, Location: cfg.ReportLocation, Days: f.days}
	if err := settle.CheckDeposits(raw, o); err != nil {
		return fail(err)
	}
	df := reconcile.SettleFactOf(o.File, raw, layout)
	df.TZ, df.Days = cfg.ReportLocation.String(), f.days
	var rep settle.DepositsReport
	how, err := commitStatement(ctx, cfg, reconcile.Fact{Kind: reconcile.FactDeposits, Deposits: df}, raw, "account statement "+o.File, &rep)
	if err != nil {
		return fail(err)
	}
	exit := ExitOK
	if rep.Differs() {
		exit = ExitDifferences
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(err)
		}
		return exit
	}
	fmt.Fprintf(stdout, "account statement %s, %s to %s (%s): %d deposits matched, %d missing, %d with another amount, %d unexpected credits, %d not due yet\n",
		rep.File, rep.From, rep.To, how, len(rep.Matched), len(rep.Missing), len(rep.AmountMismatch), len(rep.Unexpected), len(rep.Waiting))
	if rep.Again {
		fmt.Fprintln(stdout, "(this account statement was recorded before: nothing written again)")
	}
	kwd := func(p *int64) string {
		if p == nil {
			return "-"
		}
		s, _ := payment.Format(*p, "KWD")
		return s
	}
	for _, s := range []struct {
		title string
		items []settle.Deposit
	}{{"missing (the bank's net did not reach the account):", rep.Missing},
		{"arrived with another amount:", rep.AmountMismatch},
		{"credits of no posting day:", rep.Unexpected},
		{"not due yet:", rep.Waiting}} {
		if len(s.items) == 0 {
			continue
		}
		fmt.Fprintln(stdout, s.title)
		for _, d := range s.items {
			fmt.Fprintf(stdout, "  posting day %-10s %-8s expected %12s  received %12s  %-10s line %-5d %s %s\n", d.PostingDate, d.Batch,
				kwd(d.Expected), kwd(d.Received), d.Date, d.Line, d.Reference, d.Note)
		}
	}
	for _, s := range rep.Skipped {
		if s.Unreadable {
			fmt.Fprintf(stdout, "  line %-5d could not be read: %s\n", s.Line, s.Reason)
		}
	}
	if len(rep.Missing)+len(rep.AmountMismatch) > 0 {
		fmt.Fprintln(stdout, "discrepancies opened: reconciler discrepancies --kind deposit_missing (or deposit_amount_mismatch)")
	}
	return exit
}

// commitStatement publishes f, a settle or deposits fact carrying the statement raw, waits for its
// application, and decodes the run's report into rep; what names the file in errors. It returns
// how the fact was applied (by whom, at which stream sequence).
func commitStatement(ctx context.Context, cfg Config, f reconcile.Fact, raw []byte, what string, rep any) (string, error) {
	r, err := openRoad(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer r.close()
	now := r.ledger.Now()
	sum := sha256.Sum256(raw)
	f.ID = f.Kind + ":" + hex.EncodeToString(sum[:8]) + ":" + now.UTC().Format(time.RFC3339Nano)
	f.At, f.Operator = now, &reconcile.OperatorNote{Who: operatorName()}
	res, err := r.facts.Commit(ctx, f)
	if res, err = r.outcome(res, err); err != nil {
		return "", err
	}
	if res.Refused != "" {
		return "", errors.New(res.Refused)
	}
	report := res.Settle
	if f.Kind == reconcile.FactDeposits {
		report = res.Deposits
	}
	if len(report) == 0 {
		return "", fmt.Errorf("%s %s without a report", what, applied(res))
	}
	return applied(res), json.Unmarshal(report, rep)
}
