package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
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

// TestSettleAgainstSimulatorStatement: KNET payments captured (one partly refunded) on the
// simulator reach the ledger; the sweep learns their KNET ids; the simulator's bank statement of
// the day, with a line missing, an extra line and a changed amount, is matched: each difference
// reported with its payment, action and line; not_settled and amount_mismatch opened; importing
// the same statement again changes nothing.
func TestSettleAgainstSimulatorStatement(t *testing.T) {
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
	for _, amount := range []int64{1_000, 2_500, 3_750, 5_000, 7_250} {
		id := p.pay(t, amount)
		if _, err := p.sim.Complete(id, ckosim.TestCard); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := p.sim.Refund(ids[4], 1_250, "partial"); err != nil {
		t.Fatal(err)
	}
	p.idle(t)
	poll(t, "captures and the refund applied", func() bool {
		d, err := m.Ledger().Payment(ctx, ids[4])
		return err == nil && d.Refunded == 1_250
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, env(vars), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, out, stderr := cli("sweep", "--once"); code != 0 || !strings.Contains(out, "knet_ids") {
		t.Fatalf("sweep: %d %s %s", code, out, stderr)
	}
	date := time.Now().In(cfg.ReportLocation).Format(time.DateOnly)
	statement, err := p.sim.Statement(date, ckosim.StatementFaults{Missing: 1, Extra: 1, Change: 1})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "knet-"+date+".csv")
	if err := os.WriteFile(file, statement, 0o600); err != nil {
		t.Fatal(err)
	}
	type item struct {
		PaymentID       string `json:"payment_id"`
		ActionID        string `json:"action_id"`
		LedgerAmount    *int64 `json:"ledger_amount"`
		StatementAmount *int64 `json:"statement_amount"`
		Line            int    `json:"line"`
	}
	var res struct {
		Matched        int    `json:"matched"`
		LedgerOnly     []item `json:"ledger_only"`
		StatementOnly  []item `json:"statement_only"`
		AmountMismatch []item `json:"amount_mismatch"`
		Again          bool   `json:"again"`
	}
	for round := 0; round < 2; round++ {
		code, out, stderr := cli("settle", "--statement", file, "--json", "--not-settled-after", "0s")
		if code != ExitDifferences {
			t.Fatalf("settle: %d %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		// 6 ledger postings (5 captures, 1 refund); the statement lost the oldest, changed the newest.
		if res.Matched != 4 || len(res.LedgerOnly) != 1 || len(res.StatementOnly) != 1 || len(res.AmountMismatch) != 1 || res.Again != (round == 1) {
			t.Fatalf("round %d: %s", round, out)
		}
		lo, mm, so := res.LedgerOnly[0], res.AmountMismatch[0], res.StatementOnly[0]
		if lo.PaymentID != ids[0] || lo.ActionID == "" || *lo.LedgerAmount != 1_000 || mm.Line == 0 || mm.ActionID == "" ||
			*mm.StatementAmount != *mm.LedgerAmount+10 || so.Line == 0 || so.PaymentID != "" {
			t.Fatalf("items: %+v %+v %+v", lo, mm, so)
		}
	}
	l, err := store.Open(ctx, ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	open, err := l.Discrepancies(ctx, store.DiscrepancyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// A payment's postings say which statement line paid them; the lost one says nothing.
	for id, want := range map[string]bool{ids[1]: true, ids[0]: false} {
		d, err := l.Payment(ctx, id)
		if err != nil || len(d.Postings) == 0 {
			t.Fatalf("%s: %+v %v", id, d, err)
		}
		if got := d.Postings[0].Settlement; (got != nil) != want || (want && (got.Line == 0 || got.File != filepath.Base(file) || got.StatementAmount != d.Postings[0].Amount)) {
			t.Fatalf("%s settlement %+v, want settled %t", id, got, want)
		}
	}
	count := map[payment.Kind]int{}
	for _, d := range open {
		count[d.Kind]++
	}
	if count[payment.KindNotSettled] != 1 || count[payment.KindAmountMismatch] != 1 {
		t.Fatalf("open discrepancies %v", count)
	}
	// The range report shows, per payment, KNET's ids and what the bank paid.
	code, out, stderr := cli("report", "--from", date, "--to", date, "--format", "json")
	var rng struct {
		Payments []struct {
			ID                string `json:"payment_id"`
			KNETTransactionID string `json:"knet_transaction_id"`
			Settlement        string `json:"settlement"`
			RefundKind        string `json:"refund_kind"`
		} `json:"payments"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rng) != nil || len(rng.Payments) != 5 {
		t.Fatalf("report range: %d %s %s", code, out, stderr)
	}
	want := map[string]string{ids[0]: "not yet", ids[1]: "settled", ids[2]: "settled", ids[3]: "settled", ids[4]: "partly settled"}
	for _, p := range rng.Payments {
		if p.Settlement != want[p.ID] || p.KNETTransactionID == "" {
			t.Errorf("%s: settlement %q (want %q), KNET transaction id %q", p.ID, p.Settlement, want[p.ID], p.KNETTransactionID)
		}
		if p.ID == ids[4] && p.RefundKind != "partial" {
			t.Errorf("%s refund kind %q", p.ID, p.RefundKind)
		}
	}
	// The text form names the sections and the lines.
	if code, out, _ := cli("settle", "--statement", file); code != ExitDifferences || !strings.Contains(out, "4 matched") ||
		!strings.Contains(out, "not on the statement") || !strings.Contains(out, "recorded before") {
		t.Fatalf("settle text: %d %s", code, out)
	}
	// Another bank's layout, mapped by a file: same statement, other headers.
	other := strings.Replace(string(statement), "knet_transaction_id,knet_payment_id,bank_reference,auth_code,reference,amount,date,kind",
		"Trans ID,Payment ID,Bank Ref,Auth,Merchant Ref,Amount KWD,Post Date,Type", 1)
	otherFile := filepath.Join(t.TempDir(), "other-bank.csv")
	mapping := filepath.Join(t.TempDir(), "layout.txt")
	if err := os.WriteFile(otherFile, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mapping, []byte("# our bank\nknet_transaction_id=Trans ID\nknet_payment_id=Payment ID\nbank_reference=Bank Ref\n"+
		"amount=Amount KWD\ndate=Post Date\nkind=Type\nreference=Merchant Ref\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := cli("settle", "--statement", otherFile, "--columns", "@"+mapping, "--json"); code != ExitDifferences || !strings.Contains(out, `"matched": 4`) {
		t.Fatalf("mapped layout: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := cli("settle"); code != ExitUsage || !strings.Contains(stderr, "--statement") {
		t.Fatalf("settle without a statement: %d %s", code, stderr)
	}
	// As in the README's tour: the reconciler runs, and the command, without the webhook keys,
	// publishes the statement and reads what the reconciler's consumer made of it.
	m = NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bare := maps.Clone(vars)
	delete(bare, "KNETRECON_WEBHOOK_KEYS")
	var bareOut, bareErr bytes.Buffer
	if code := run(ctx, []string{"settle", "--statement", otherFile, "--columns", "@" + mapping}, env(bare), &bareOut, &bareErr); code != ExitDifferences ||
		!strings.Contains(bareOut.String(), "recorded before") || !strings.Contains(bareOut.String(), "applied (stream seq") {
		t.Fatalf("settle beside a running reconciler: %d %s %s", code, bareOut.String(), bareErr.String())
	}
	acts, err := m.Ledger().Actions(ctx, "", 0)
	if err != nil || len(acts) == 0 || acts[0].Action != "settle" || acts[0].Subject != "statement:other-bank.csv" {
		t.Fatalf("audit trail %+v %v", acts, err)
	}
}

// TestReconcileUsage: reconcile says what it needs.
func TestReconcileUsage(t *testing.T) {
	vars := map[string]string{"KNETRECON_LEDGER": filepath.Join(t.TempDir(), "ledger.db"), "KNETRECON_CHECKOUT_SECRET_KEY": "sk_test"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"reconcile"}, "usage: reconciler reconcile --from"},
		{[]string{"reconcile", "--from", "2026-12-02", "--to", "2026-12-01"}, "before --from"},
		{[]string{"reconcile", "--from", "1/12/2026", "--to", "2026-12-01"}, "--from"},
		{[]string{"reconcile", "--from", "2026-12-01", "--to", "2026-12-01"}, "KNETRECON_LEDGER"},
	} {
		var out, errOut bytes.Buffer
		want := ExitUsage
		if tt.want == "KNETRECON_LEDGER" {
			want = ExitFailed // no ledger there: the command was right, the place wrong
		}
		if code := run(context.Background(), tt.args, env(vars), &out, &errOut); code != want || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, %q; want %q", tt.args, code, errOut.String(), tt.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"reconcile", "--from", "2026-12-01", "--to", "2026-12-01"}, env(map[string]string{}), &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "KNETRECON_CHECKOUT_SECRET_KEY") {
		t.Errorf("without the API key: %d %q", code, errOut.String())
	}
}

// TestVersion: --version answers with the build, exit 0, and needs no configuration.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{arg}, env(nil), &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "reconciler ") ||
			!strings.Contains(out.String(), "go1.") {
			t.Fatalf("%s: %d %q %q", arg, code, out.String(), errOut.String())
		}
	}
}

// TestHelpTree: `reconciler help` lists every command; a command's --help is its synopsis and its
// own flags only (not the daemon's settings); a bare reconciler or an unknown command is a usage
// error (exit 2) that shows the list.
func TestHelpTree(t *testing.T) {
	call := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, env(nil), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, _ := call("help")
	for _, c := range commands {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("help lacks %q", c.name)
		}
	}
	if code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, args := range [][]string{{"payment", "--help"}, {"help", "payment"}, {"payment", "-h"}} {
		code, out, _ = call(args...)
		if code != 0 || !strings.Contains(out, "Usage: reconciler payment <pay_id") || !strings.Contains(out, "-reference") ||
			!strings.Contains(out, "-json") || strings.Contains(out, "ack-wait") || strings.Count(out, "\n") > 25 {
			t.Fatalf("%v: %d\n%s", args, code, out)
		}
	}
	if code, _, stderr := call(); code != 2 || !strings.Contains(stderr, "Commands:") {
		t.Fatalf("bare: %d %s", code, stderr)
	}
	if code, _, stderr := call("bogus"); code != 2 || !strings.Contains(stderr, `unknown command "bogus"`) {
		t.Fatalf("unknown: %d %s", code, stderr)
	}
	if code, _, stderr := call("--ledger", "x"); code != 2 || !strings.Contains(stderr, "a command comes first") {
		t.Fatalf("flags first: %d %s", code, stderr)
	}
	if code, _, stderr := call("run", "--help"); code != 0 || !strings.Contains(stderr, "Usage: reconciler run") || !strings.Contains(stderr, "ack-wait") {
		t.Fatalf("run --help: %d %s", code, stderr)
	}
	for _, c := range commands {
		if c.name == "help" || c.name == "run" {
			continue
		}
		if code, out, _ := call(c.name, "--help"); code != 0 || !strings.HasPrefix(out, "Usage: "+c.usage) {
			t.Errorf("%s --help: %d %q", c.name, code, out)
		}
	}
}

// TestSettleBankLayout: `settle --layout FILE` reads the sample bank's statement as it sends it,
// as xlsx (--sheet) and as CSV (title rows, a byte-order mark before quoted fields, a blank and a
// Total row): every line matched, the blank and total rows listed in `skipped` and in the text,
// exit 0. A layout that does not parse is a usage error.
func TestSettleBankLayout(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	vars := p.env(t, ledger, map[string]string{"KNETRECON_SWEEP_SCHEDULE": "off"})
	l, err := store.Open(ctx, ledger)
	if err != nil {
		t.Fatal(err)
	}
	kuwait := time.FixedZone("Asia/Kuwait", 3*3600)
	day := time.Date(2026, 12, 3, 10, 0, 0, 0, kuwait)
	for i, a := range []int64{89_890, 23_988, 20_204, 118_677, 149_453, 37_453, 21_216, 62_955, 2_716, 85_866, 157_462, 30_540} {
		kind, typ := "capture", payment.EventCaptured
		if i == 8 { // ORD-0009 is a refund on the statement
			kind, typ = "refund", payment.EventRefunded
			at := day.AddDate(0, 0, -5)
			if _, err := l.Apply(ctx, store.Input{EventID: "evt_cap_9", Type: payment.EventCaptured, Origin: store.OriginWebhook, PaymentID: "pay_9",
				ActionID: "act_cap_9", Amount: 5_000, Currency: "KWD", Reference: "ORD-0009", Method: "knet", OccurredAt: at, ReceivedAt: at,
				Body: []byte(`{"id":"evt_cap_9"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		at := day.Add(time.Duration(i) * time.Minute)
		id := fmt.Sprintf("%s_%d", kind, i+1)
		if _, err := l.Apply(ctx, store.Input{EventID: "evt_" + id, Type: typ, Origin: store.OriginWebhook, PaymentID: fmt.Sprintf("pay_%d", i+1),
			ActionID: "act_" + id, Amount: a, Currency: "KWD", Reference: fmt.Sprintf("ORD-%04d", i+1), Method: "knet", OccurredAt: at,
			ReceivedAt: at, Body: []byte(`{"id":"evt_` + id + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	layout := filepath.Join(dir, "example-bank.layout")
	if err := os.WriteFile(layout, []byte("# Example Bank K.S.C.P.\ndate_format = dd/mm/yyyy\nunit = major\nsign = normal\ncurrency = KWD\n\n[columns]\n"+
		"date = Transaction Date\namount = Amount\nreference = Track ID\nbank_reference = Reference No\nauth_code = Auth Code\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, env(vars), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	var res struct {
		Matched int    `json:"matched"`
		Format  string `json:"format"`
		Skipped []struct {
			Line   int    `json:"line"`
			Reason string `json:"reason"`
		} `json:"skipped"`
	}
	code, out, stderr := cli("settle", "--statement", "../../internal/statement/testdata/knet-statement-example.xlsx", "--layout", layout,
		"--sheet", "Settlement", "--json")
	if code != ExitOK || json.Unmarshal([]byte(out), &res) != nil || res.Matched != 12 || res.Format != `xlsx, sheet "Settlement"` ||
		len(res.Skipped) != 2 || res.Skipped[0].Line != 17 || res.Skipped[1].Line != 18 || res.Skipped[1].Reason != `a total row ("Total")` {
		t.Fatalf("xlsx: %d %s %s", code, out, stderr)
	}
	code, out, stderr = cli("settle", "--statement", "../../internal/statement/testdata/knet-statement-example.csv", "--layout", layout)
	if code != ExitOK || !strings.Contains(out, "12 matched") || !strings.Contains(out, `line 18    a total row ("Total")`) {
		t.Fatalf("csv: %d %s %s", code, out, stderr)
	}
	for _, bad := range []string{"unit = fils\n", "[columns]\nnonsense = X\n"} {
		if err := os.WriteFile(layout, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := cli("settle", "--statement", "../../internal/statement/testdata/knet-statement-example.csv", "--layout", layout); code != ExitUsage ||
			!strings.Contains(stderr, "--layout") {
			t.Errorf("layout %q: %d %s", bad, code, stderr)
		}
	}
	if code, _, stderr := cli("settle", "--statement", "../../internal/statement/testdata/knet-statement-example.xlsx", "--sheet", "Summary"); code == ExitOK ||
		!strings.Contains(stderr, `no sheet "Summary"`) {
		t.Errorf("a sheet the workbook lacks: %d %s", code, stderr)
	}
}
