package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// TestThreeLegs: money to the bank account, the way make run shows it. Captures and a refund on
// the simulator reach the ledger; the bank's statement in its own layout (xlsx: title rows,
// Excel dates, commission, net, a grand total) is read with the shipped layout file: every
// posting matched, the commission no difference. The merchant's account statement with the
// day's net credited short opens deposit_amount_mismatch (exit 3); the next one, with the money
// in full, resolves it (exit 0).
func TestThreeLegs(t *testing.T) {
	p := newPipeline(t, nil)
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	vars := p.env(t, ledger, map[string]string{"KNETRECON_SWEEP_SCHEDULE": "off"})
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []string
	var fee int64
	for _, amount := range []int64{1_000, 12_500, 3_750} {
		id := p.pay(t, amount)
		if _, err := p.sim.Complete(id, ckosim.TestCard); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		fee += ckosim.Commission(amount)
	}
	if _, err := p.sim.Refund(ids[1], 2_500, "partial"); err != nil {
		t.Fatal(err)
	}
	p.idle(t)
	poll(t, "captures and the refund applied", func() bool {
		d, err := m.Ledger().Payment(ctx, ids[1])
		return err == nil && d.Refunded == 2_500
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, env(vars), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, out, stderr := cli("sweep", "--once"); code != 0 {
		t.Fatalf("sweep: %d %s %s", code, out, stderr)
	}
	date := time.Now().In(cfg.ReportLocation).Format(time.DateOnly)
	dir := t.TempDir()
	write := func(name string, b []byte, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	b, err := p.sim.BankStatement(date, ckosim.StatementFaults{}, true)
	bankFile := write("gab-"+date+".xlsx", b, err)
	code, out, stderr := cli("settle", "--statement", bankFile, "--layout", "../../docs/layouts/ckosim-bank.layout", "--json")
	var rep struct {
		Matched int `json:"matched"`
		Totals  struct {
			Gross, Fee, Net int64
		} `json:"totals"`
		Skipped []struct {
			Line   int    `json:"line"`
			Reason string `json:"reason"`
		} `json:"skipped"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("settle: %d %s %s", code, out, stderr)
	}
	gross := int64(1_000 + 12_500 + 3_750 - 2_500)
	if rep.Matched != 4 || rep.Totals.Gross != gross || rep.Totals.Fee != fee || rep.Totals.Net != gross-fee || len(rep.Skipped) != 1 ||
		!strings.Contains(rep.Skipped[0].Reason, "total") {
		t.Fatalf("settle report: %s", out)
	}
	// The payment shows what the bank paid for its capture: gross, commission, net.
	if code, out, _ := cli("payment", ids[0]); code != ExitOK || !strings.Contains(out, "gross 1.000 KWD  fee 0.050 KWD  net 0.950 KWD") {
		t.Fatalf("payment: %d %s", code, out)
	}
	// The day's report says what the bank paid: per day in the text, per posting in the CSV.
	if code, out, stderr := cli("report", "--date", date); code != ExitOK ||
		!strings.Contains(out, fmt.Sprintf("the bank paid 4 of them: commission %s, net %s", kwdOf(fee), kwdOf(gross-fee))) {
		t.Fatalf("report: %d %s %s", code, out, stderr)
	}
	if code, out, _ := cli("report", "--date", date, "--format", "csv"); code != ExitOK || !strings.Contains(out, ",-50,-0.050,950,0.950,KWD,") {
		t.Fatalf("report csv: %d %s", code, out)
	}
	acctLayout := "../../docs/layouts/ckosim-account.layout"
	b, err = p.sim.AccountStatement(date, date, ckosim.AccountFaults{Short: 1}, false)
	short := write("account-1.csv", b, err)
	code, out, stderr = cli("deposits", "--statement", short, "--layout", acctLayout, "--json")
	var dep struct {
		Matched        []json.RawMessage `json:"matched"`
		AmountMismatch []struct {
			Expected, Received int64
		} `json:"amount_mismatch"`
	}
	if code != ExitDifferences || json.Unmarshal([]byte(out), &dep) != nil || len(dep.AmountMismatch) != 1 ||
		dep.AmountMismatch[0].Expected != gross-fee || dep.AmountMismatch[0].Received != gross-fee-100 {
		t.Fatalf("deposits, short: %d %s %s", code, out, stderr)
	}
	b, err = p.sim.AccountStatement(date, date, ckosim.AccountFaults{}, true)
	full := write("account-2.xlsx", b, err)
	if code, out, stderr = cli("deposits", "--statement", full, "--layout", acctLayout); code != ExitOK || !strings.Contains(out, "1 deposits matched") {
		t.Fatalf("deposits, in full: %d %s %s", code, out, stderr)
	}
	l, err := store.Open(ctx, ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	open, err := l.Discrepancies(ctx, store.DiscrepancyFilter{})
	if err != nil || len(open) != 0 {
		t.Fatalf("open discrepancies after the three legs: %+v %v", open, err)
	}
	all, _ := l.Discrepancies(ctx, store.DiscrepancyFilter{All: true, Kind: payment.KindDepositAmountMismatch})
	if len(all) != 1 || !strings.Contains(all[0].Resolution, "account-2.xlsx") {
		t.Fatalf("the short deposit resolved as %+v", all)
	}
	if code, _, stderr := cli("deposits", "--statement", full, "--days", "-1"); code != ExitUsage {
		t.Fatalf("deposits --days -1: %d %s", code, stderr)
	}
}

func kwdOf(fils int64) string { return fmt.Sprintf("%d.%03d", fils/1000, fils%1000) }
