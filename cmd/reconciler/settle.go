package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/settle"
)

// settleFlags are the settle subcommand's own flags.
type settleFlags struct {
	statement, columns string
	layout, sheet      string
	notSettledAfter    string
	// days: deposits' --days.
	days int
}

// settleUsage is settle's synopsis.
const settleUsage = "reconciler settle --statement FILE [--layout FILE] [--columns KEY=Header,...] [--sheet NAME] [--date D] [--json]"

// cmdSettle matches the acquiring bank's KNET statement against the ledger and records the run.
func cmdSettle(ctx context.Context, cfg Config, f settleFlags, date string, asJSON bool, stdout io.Writer, fail func(error) int) int {
	if f.statement == "" {
		return fail(badUsage("usage: %s (keys: %v)", settleUsage, settle.Keys))
	}
	// The bank's layout: a --layout file, then --columns and --sheet over it.
	layout, err := layoutOf(f, settle.Keys)
	if err != nil {
		return fail(err)
	}
	m, err := settle.DefaultMapping().With(layout.Columns)
	if err != nil {
		return fail(badUsage("--columns: %v", err))
	}
	layout.Columns = m
	steps, err := parseSteps(f.notSettledAfter)
	if err != nil || len(steps) != 1 {
		return fail(badUsage("--not-settled-after %q: one duration, like 72h or 3d", f.notSettledAfter))
	}
	after := steps[0]
	raw, err := os.ReadFile(f.statement)
	if err != nil {
		return fail(err)
	}
	o := settle.Options{File: filepath.Base(f.statement), Layout: layout, Location: cfg.ReportLocation, Date: date, NotSettledAfter: after}
	if err := settle.Check(raw, o); err != nil {
		return fail(err)
	}
	// The statement travels the stream as a fact: every reconciler's ledger records the same run.
	sf := reconcile.SettleFactOf(o.File, raw, layout)
	sf.TZ, sf.Date, sf.NotSettledAfter = cfg.ReportLocation.String(), date, after
	var rep settle.Report
	how, err := commitStatement(ctx, cfg, reconcile.Fact{Kind: reconcile.FactSettle, Settle: sf}, raw, "statement "+o.File, &rep)
	if err != nil {
		return fail(err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(err)
		}
		return settleExit(rep)
	}
	kwd := func(p *int64) string {
		if p == nil {
			return "-"
		}
		s, _ := payment.Format(*p, "KWD")
		return s
	}
	fmt.Fprintf(stdout, "statement %s, %s to %s (%s): %d matched, %d in the ledger only, %d on the statement only, %d with another amount\n",
		filepath.Base(f.statement), rep.From.In(cfg.ReportLocation).Format("2006-01-02"), rep.To.In(cfg.ReportLocation).AddDate(0, 0, -1).Format("2006-01-02"), how,
		rep.Matched, len(rep.LedgerOnly), len(rep.StatementOnly), len(rep.AmountMismatch))
	fmt.Fprintf(stdout, "gross %s, the bank's commission %s, net %s (KWD; refunds taken off)\n", kwd(&rep.Totals.Gross), kwd(&rep.Totals.Fee), kwd(&rep.Totals.Net))
	if rep.Again {
		fmt.Fprintln(stdout, "(this statement was recorded before: nothing written again)")
	}
	if len(rep.NetMismatch) > 0 {
		fmt.Fprintln(stdout, "lines whose amount less commission is not their net (the bank's arithmetic: look at them):")
		for _, m := range rep.NetMismatch {
			fmt.Fprintf(stdout, "  line %-5d amount %s  commission %s  net %s\n", m.Line, kwd(&m.Amount), kwd(&m.Fee), kwd(&m.Net))
		}
	}
	if len(rep.Skipped) > 0 {
		fmt.Fprintf(stdout, "rows read as no line (%s):\n", rep.Format)
		for _, s := range rep.Skipped {
			mark := ""
			if s.Unreadable {
				mark = "  (could not be read: look at it)"
			}
			fmt.Fprintf(stdout, "  line %-5d %s%s\n", s.Line, s.Reason, mark)
		}
	}
	for _, s := range []struct {
		title string
		items []settle.Item
	}{{"in the ledger, not on the statement (money the bank did not pay):", rep.LedgerOnly},
		{"on the statement, not in the ledger:", rep.StatementOnly},
		{"matched with another amount:", rep.AmountMismatch}} {
		if len(s.items) == 0 {
			continue
		}
		fmt.Fprintln(stdout, s.title)
		for _, it := range s.items {
			line := ""
			if it.Line > 0 {
				line = "line " + strconv.Itoa(it.Line)
			}
			fmt.Fprintf(stdout, "  %-8s %-30s %-30s %-7s ledger %9s  statement %9s  %s\n", line, it.PaymentID, it.ActionID, it.Kind,
				kwd(it.LedgerAmount), kwd(it.StatementAmount), it.Reason)
		}
	}
	if rep.NotSettled > 0 {
		fmt.Fprintf(stdout, "%d not_settled discrepancies opened (older than %s): reconciler discrepancies --kind not_settled\n", rep.NotSettled, f.notSettledAfter)
	}
	return settleExit(rep)
}

// settleExit is settle's exit status: ExitDifferences when the statement and the ledger differ, a
// line's amount less commission is not its net, or a row of the statement could not be read (a
// blank, total or footer row is no difference; the commission never is).
func settleExit(rep settle.Report) int {
	if len(rep.LedgerOnly)+len(rep.StatementOnly)+len(rep.AmountMismatch)+len(rep.NetMismatch)+rep.NotSettled > 0 {
		return ExitDifferences
	}
	for _, s := range rep.Skipped {
		if s.Unreadable {
			return ExitDifferences
		}
	}
	return ExitOK
}
