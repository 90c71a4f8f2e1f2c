package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/events"
	"knetrecon/internal/store"
)

// TestOneShotCommandsAnswerAlike: every command that publishes a fact (reconcile --apply, sweep
// --once, resolve, dlq discard, dlq replay, settle) prints what applying it did and exits with the
// same status whether it runs alone, beside a running reconciler (the normal deployment: the
// service runs, an operator types a command with its environment), or beside one without the
// webhook keys in its own environment. The same assertions hold in every mode.
func TestOneShotCommandsAnswerAlike(t *testing.T) {
	for _, mode := range []struct {
		name          string
		running, keys bool
	}{
		{"alone", false, true},
		{"beside a running reconciler", true, true},
		{"beside a running reconciler, without the webhook keys", true, false},
	} {
		t.Run(mode.name, func(t *testing.T) { oneShotAnswers(t, mode.running, mode.keys) })
	}
}

func oneShotAnswers(t *testing.T, running, keys bool) {
	p := newPipeline(t, nil)
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	vars := p.env(t, ledger, map[string]string{"KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_REPORT_SCHEDULE": "off"})
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := m.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	ctx := context.Background()

	paid := p.pay(t, 1_500)
	if _, err := p.sim.Complete(paid, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	lost := p.pay(t, 2_500)
	p.sim.DropNext(2) // its payment_approved and payment_captured never arrive
	if _, err := p.sim.Complete(lost, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	p.idle(t)
	// Two authentic bodies the rules can never apply: dead letters to discard and to replay.
	_, js := connectJS(t, p.nats)
	ring, err := checkout.NewKeyRing(checkout.Key{Secret: []byte(simHookKy)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		body := []byte(`{"id":"evt_junk_` + strconv.Itoa(i) + `","type":"payment_captured","data":"not an object"}`)
		sig, key := ring.Sign(body)
		if _, err := events.NewPublisher(js).Publish(ctx, &events.Webhook{Body: body, EventID: "evt_junk_" + strconv.Itoa(i),
			EventType: "payment_captured", KeyName: key, Signature: sig, ReceivedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "the road applied", func() bool {
		d, err := m.Ledger().Payment(ctx, paid)
		dls, _ := m.Ledger().DeadLetters(ctx, true, 10)
		return err == nil && d.Captured == 1_500 && len(dls) == 2
	})
	if !running {
		stop()
	}
	cmdVars := vars
	if !keys {
		cmdVars = maps.Clone(vars)
		delete(cmdVars, "KNETRECON_WEBHOOK_KEYS")
	}
	var took []string
	t.Cleanup(func() {
		t.Logf("FIGURE one-shot commands (running %t, webhook keys %t): %s", running, keys, strings.Join(took, ", "))
	})
	cli := func(want int, args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		started := time.Now()
		code := run(ctx, args, env(cmdVars), &out, &errOut)
		took = append(took, fmt.Sprintf("%s %s", strings.Join(args[:min(2, len(args))], " "), time.Since(started).Round(time.Millisecond)))
		if code != want {
			t.Fatalf("reconciler %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}

	// reconcile --apply learns the lost capture: its answer is its own fact's, recovered, and
	// differences found exit 3.
	today := time.Now().In(cfg.ReportLocation).Format(time.DateOnly)
	out, _ := cli(ExitDifferences, "reconcile", "--from", today, "--to", today, "--apply", "--json")
	var rep struct {
		Decisions []struct {
			PaymentID     string   `json:"payment_id"`
			Outcome       string   `json:"outcome"`
			Discrepancies []string `json:"discrepancies"`
			NotApplied    bool     `json:"not_applied"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]string{}
	for _, d := range rep.Decisions {
		got[d.PaymentID] = d.Outcome + " " + strings.Join(d.Discrepancies, ",")
		if d.NotApplied {
			t.Errorf("%s not applied: %+v", d.PaymentID, d)
		}
	}
	if got[lost] != "recovered webhook_missing" || got[paid] != "reconciled " {
		t.Fatalf("reconcile --apply: %v\n%s", got, out)
	}
	// Again: nothing left to learn, the two sides agree.
	cli(ExitOK, "reconcile", "--from", today, "--to", today, "--apply")

	// sweep --once: nothing is due (the check above learned the KNET ids too); it answers alike.
	if out, _ := cli(ExitOK, "sweep", "--once"); !strings.Contains(out, "what it did") || !strings.Contains(out, "stuck: 0") {
		t.Fatalf("sweep --once: %s", out)
	}

	// resolve: its own fact's result; a second time: refused.
	l, err := store.Open(ctx, ledger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ds, err := l.Discrepancies(ctx, store.DiscrepancyFilter{Kind: "webhook_missing"})
	if err != nil || len(ds) != 1 {
		t.Fatalf("webhook_missing: %+v %v", ds, err)
	}
	id := strconv.FormatInt(ds[0].ID, 10)
	if out, _ := cli(ExitOK, "resolve", id, "--note", "webhook delivery log checked"); !strings.Contains(out, "discrepancy "+id+" resolved: applied (stream seq") {
		t.Fatalf("resolve: %s", out)
	}
	if _, stderr := cli(ExitFailed, "resolve", id, "--note", "again"); !strings.Contains(stderr, "resolved already") {
		t.Fatalf("resolve again: %s", stderr)
	}

	// dlq discard sets one aside; dlq replay of the other fails again and says so.
	dls, err := l.DeadLetters(ctx, true, 10)
	if err != nil || len(dls) != 2 {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	discard, replay := strconv.FormatInt(dls[0].ID, 10), strconv.FormatInt(dls[1].ID, 10)
	if out, _ := cli(ExitOK, "dlq", "discard", discard, "--note", "junk from a test"); !strings.Contains(out, "discarded") || !strings.Contains(out, "applied (stream seq") {
		t.Fatalf("dlq discard: %s", out)
	}
	if _, stderr := cli(ExitFailed, "dlq", "replay", replay); !strings.Contains(stderr, "dead letter "+replay+" not applied") {
		t.Fatalf("dlq replay: %s", stderr)
	}
	if d, err := l.DeadLetter(ctx, dls[1].ID); err != nil || d.DiscardedAt != nil || !strings.HasPrefix(d.ReplayResult, "failed") {
		t.Fatalf("replayed dead letter %+v %v", d, err)
	}

	// settle: the report, whoever applied the statement; a changed amount exits 3.
	statement, err := p.sim.Statement(today, ckosim.StatementFaults{Change: 1})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "knet-"+today+".csv")
	if err := os.WriteFile(file, statement, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _ := cli(ExitDifferences, "settle", "--statement", file, "--not-settled-after", "72h"); !strings.Contains(out, "1 matched") ||
		!strings.Contains(out, "1 with another amount") {
		t.Fatalf("settle: %s", out)
	}
	clean, err := p.sim.Statement(today, ckosim.StatementFaults{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, clean, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _ := cli(ExitOK, "settle", "--statement", file, "--not-settled-after", "72h"); !strings.Contains(out, "2 matched, 0 in the ledger only, 0 on the statement only, 0 with another amount") {
		t.Fatalf("settle clean: %s", out)
	}
	// Usage errors are 2.
	cli(ExitUsage, "settle")
	cli(ExitUsage, "resolve", "x", "--note", "n")
}

// TestOneShotWithNobodyToApply: without the webhook keys and with no reconciler running, a
// command cannot know what its fact did: it says so and exits 1 (the fact waits on the stream).
func TestOneShotWithNobodyToApply(t *testing.T) {
	old := FactWait
	FactWait = 300 * time.Millisecond
	t.Cleanup(func() { FactWait = old })
	p := newPipeline(t, nil)
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	vars := p.env(t, ledger, map[string]string{"KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_REPORT_SCHEDULE": "off"})
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"migrate"}, env(vars), &out, &errOut); code != 0 {
		t.Fatal(errOut.String())
	}
	_, js := connectJS(t, p.nats)
	ring, _ := checkout.NewKeyRing(checkout.Key{Secret: []byte(simHookKy)})
	body := []byte(`{"id":"evt_junk","type":"payment_captured","data":"not an object"}`)
	sig, key := ring.Sign(body)
	if _, err := events.NewPublisher(js).Publish(ctx, &events.Webhook{Body: body, EventID: "evt_junk", EventType: "payment_captured",
		KeyName: key, Signature: sig, ReceivedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if code := run(ctx, []string{"replay", "--from-seq", "1"}, env(vars), &out, &errOut); code != 0 {
		t.Fatal(errOut.String())
	}
	bare := maps.Clone(vars)
	delete(bare, "KNETRECON_WEBHOOK_KEYS")
	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"dlq", "discard", "1", "--note", "junk"}, env(bare), &out, &errOut); code != ExitFailed ||
		!strings.Contains(errOut.String(), "not applied to this ledger yet") || !strings.Contains(errOut.String(), "KNETRECON_WEBHOOK_KEYS") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
}

// connectJS connects a test to the NATS at url.
func connectJS(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
