package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/events"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// TestReplicasConfiguredDifferentlyWriteTheSameRows: two reconcilers on one stream, each with its
// own ledger and other local settings (pending timeout, verification, first check, time zone,
// clock skew), go through webhooks, a lost capture, an event dated in year 9999, dead letters, a
// discard, a replay that fails again, the sweep, a reconciliation, a bank statement and operators'
// actions from both sides. At the same stream position, every table a person reads is the same,
// row by row.
func TestReplicasConfiguredDifferentlyWriteTheSameRows(t *testing.T) {
	p := newPipeline(t, nil)
	dir := t.TempDir()
	common := map[string]string{"KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_REPORT_SCHEDULE": "off",
		"KNETRECON_FACT_KEYS": "fact-key-shared-by-both", "KNETRECON_DATA_DIR": dir}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	varsA := p.env(t, filepath.Join(dir, "a.db"), with(map[string]string{"KNETRECON_CONSUMER": "reconciler-a",
		"KNETRECON_PENDING_TIMEOUT": "1ms", "KNETRECON_VOID_GRACE": "0s", "KNETRECON_VERIFY_AFTER": "31h,8d",
		"KNETRECON_REPORT_TZ": "Asia/Kuwait", "KNETRECON_MAX_CLOCK_SKEW": "24h"}))
	varsB := p.env(t, filepath.Join(dir, "b.db"), with(map[string]string{"KNETRECON_CONSUMER": "reconciler-b",
		"KNETRECON_PENDING_TIMEOUT": "10m", "KNETRECON_VOID_GRACE": "1h", "KNETRECON_VERIFY_AFTER": "40h",
		"KNETRECON_REPORT_TZ": "UTC", "KNETRECON_MAX_CLOCK_SKEW": "1h"}))
	ctx := context.Background()
	var ms []*Main
	for _, vars := range []map[string]string{varsA, varsB} {
		cfg, _, err := ParseConfig("run", nil, env(vars), nil)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMain(cfg, zaptest.NewLogger(t).Named(cfg.Consumer.Durable))
		if err := m.Run(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ms = append(ms, m)
	}

	paid := p.pay(t, 1_500)
	if _, err := p.sim.Complete(paid, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sim.Refund(paid, 500, "partial"); err != nil {
		t.Fatal(err)
	}
	lost := p.pay(t, 2_500)
	p.sim.DropNext(2)
	if _, err := p.sim.Complete(lost, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	pending := p.pay(t, 3_000) // left Pending: the sweep voids it
	p.idle(t)
	_, js := connectJS(t, p.nats)
	ring, err := checkout.NewKeyRing(checkout.Key{Secret: []byte(simHookKy)})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(id, typ string, body []byte) {
		t.Helper()
		sig, key := ring.Sign(body)
		if _, err := events.NewPublisher(js).Publish(ctx, &events.Webhook{Body: body, EventID: id, EventType: typ, KeyName: key,
			Signature: sig, ReceivedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		id := "evt_junk_" + strconv.Itoa(i)
		publish(id, "payment_captured", []byte(`{"id":"`+id+`","type":"payment_captured","data":"not an object"}`))
	}
	// A capture dated 9999-12-31 and one dated 2099: applied, timed by their receipt, flagged.
	far := strings.Replace(string(webhookBody("evt_far", "payment_captured", "pay_far_future", "act_far", 4_000)),
		"2026-03-01T10:00:00Z", "9999-12-31T23:59:59Z", 1)
	publish("evt_far", "payment_captured", []byte(far))
	ahead := strings.Replace(string(webhookBody("evt_2099", "payment_captured", "pay_2099", "act_2099", 4_500)),
		"2026-03-01T10:00:00Z", "2099-01-01T00:00:00Z", 1)
	publish("evt_2099", "payment_captured", []byte(ahead))

	caughtUp := func(what string) {
		t.Helper()
		poll(t, what, func() bool {
			s, err := js.Stream(ctx, events.StreamName)
			if err != nil {
				return false
			}
			info, err := s.Info(ctx)
			if err != nil {
				return false
			}
			for _, m := range ms {
				if pos, err := m.Ledger().Position(ctx); err != nil || pos < info.State.LastSeq {
					return false
				}
			}
			return true
		})
	}
	caughtUp("both replicas applied the webhooks")

	cli := func(vars map[string]string, want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, args, env(vars), &out, &errOut); code != want {
			t.Fatalf("reconciler %v: exit %d, want %d\n%s\n%s", args, code, want, out.String(), errOut.String())
		}
		return out.String()
	}
	today := time.Now().In(ms[0].Config.ReportLocation).Format(time.DateOnly)
	// A's sweep: its schedule becomes every ledger's; it voids the pending payment; the dates
	// of year 9999 break nothing.
	cli(varsA, ExitOK, "sweep", "--once", "--json")
	cli(varsA, ExitDifferences, "reconcile", "--from", today, "--to", today, "--apply")
	cli(varsA, ExitOK, "sweep", "--once", "--json")
	l := ms[0].Ledger()
	if v, _ := p.sim.Payment(pending); v.Status != "Voided" {
		t.Fatalf("pending payment %s at Checkout.com: %s", pending, v.Status)
	}
	if got, err := l.ScheduleOfRecord(ctx); err != nil || got.FirstCheckAfter != time.Millisecond || got.VerifyAfter != 31*time.Hour {
		t.Fatalf("the ledger's schedule %+v (%v), want the sweep holder's", got, err)
	}
	ds, err := l.Discrepancies(ctx, store.DiscrepancyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int64{}
	for _, d := range ds {
		kinds[string(d.Kind)] = d.ID
	}
	if kinds["clock_skew"] == 0 || kinds["webhook_missing"] == 0 {
		t.Fatalf("discrepancies %v", kinds)
	}
	for _, id := range []string{"pay_far_future", "pay_2099"} {
		pay, err := l.Payment(ctx, id)
		if err != nil || pay.Captured == 0 || pay.VerifyAt == nil || pay.VerifyAt.After(time.Now().Add(32*time.Hour)) {
			t.Fatalf("%s: %+v %v", id, pay, err)
		}
	}
	// Operators act from both sides.
	cli(varsA, ExitOK, "resolve", strconv.FormatInt(kinds["webhook_missing"], 10), "--note", "delivery log checked")
	cli(varsB, ExitOK, "resolve", strconv.FormatInt(kinds["clock_skew"], 10), "--note", "Checkout.com's clock")
	dls, err := l.DeadLetters(ctx, true, 10)
	if err != nil || len(dls) != 2 {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	cli(varsB, ExitOK, "dlq", "discard", strconv.FormatInt(dls[0].ID, 10), "--note", "junk")
	cli(varsA, ExitFailed, "dlq", "replay", strconv.FormatInt(dls[1].ID, 10))
	statement, err := p.sim.Statement(today, ckosim.StatementFaults{Change: 1, Extra: 1})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "knet-"+today+".csv")
	if err := os.WriteFile(file, statement, 0o600); err != nil {
		t.Fatal(err)
	}
	cli(varsB, ExitDifferences, "settle", "--statement", file, "--not-settled-after", "0s")
	if out := cli(varsA, ExitOK, "report", "--date", today, "--format", "json"); !strings.Contains(out, "pay_far_future") && !strings.Contains(out, "4.000") {
		t.Logf("report: %s", out)
	}

	caughtUp("both replicas applied every fact")
	if diff := storetest.DiffLedgers(t, ms[0].Ledger(), ms[1].Ledger()); len(diff) > 0 {
		t.Fatalf("the replicas differ:\n%s", strings.Join(diff, "\n"))
	}
	a, err := ms[0].Ledger().Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ms[1].Ledger().Digest(ctx)
	if err != nil || !a.Same(b) {
		t.Fatalf("digests differ in %v (%v)", a.Differs(b), err)
	}
	for _, td := range a.Tables {
		switch td.Name {
		case "dead_letters", "operator_actions", "settlement_runs", "payment_checks", "knet_ids", "schedule_settings":
			if td.Rows == 0 {
				t.Errorf("table %s is empty: the test did not reach it", td.Name)
			}
		}
	}
}
