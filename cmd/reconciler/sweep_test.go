package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/payment"
)

const (
	simKey    = "sk_sbox_reconciler_test"
	simHookKy = "whsec_reconciler_test"
)

// pipeline is the road without the receiver binary: the simulator's webhooks are verified and
// published to a real JetStream by a sink doing the receiver's job.
type pipeline struct {
	sim   *ckosim.Sim
	clock *ckosim.FakeClock
	api   *httptest.Server
	nats  string
}

func newPipeline(t *testing.T, clock *ckosim.FakeClock) *pipeline {
	t.Helper()
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	pub := events.NewPublisher(js)
	ring, err := checkout.NewKeyRing(checkout.Key{Secret: []byte(simHookKy)})
	if err != nil {
		t.Fatal(err)
	}
	// The sink stamps ReceivedAt on the simulator's clock: a payment's first check is due from
	// when it was first seen, so a real-time stamp would drift from the fake clock with the
	// test's own wall time.
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key, err := ring.Verify(body, r.Header.Get(checkout.SignatureHeader))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		head, err := checkout.DecodeHead(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := pub.Publish(r.Context(), &events.Webhook{Body: body, EventID: head.ID, EventType: head.Type, KeyName: key,
			Signature: r.Header.Get(checkout.SignatureHeader), ReceivedAt: now()}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(sink.Close)
	cfg := ckosim.Config{SecretKey: simKey, WebhookURL: sink.URL, WebhookKey: simHookKy, Seed: 3}
	if clock != nil {
		cfg.Clock = clock
	}
	p := &pipeline{sim: ckosim.New(cfg), clock: clock, nats: ns.ClientURL()}
	t.Cleanup(func() { _ = p.sim.Close() })
	p.api = httptest.NewServer(p.sim.Handler())
	t.Cleanup(p.api.Close)
	return p
}

func (p *pipeline) pay(t *testing.T, amount int64) string {
	t.Helper()
	c, err := p.sim.CreatePayment(ckosim.PaymentRequest{Amount: amount, Currency: "KWD", Reference: "ORD-9", Source: checkout.Source{Type: "knet", Language: "ar"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.sim.Land(c.ID); err != nil {
		t.Fatal(err)
	}
	p.idle(t)
	return c.ID
}

func (p *pipeline) idle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.sim.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

func (p *pipeline) env(t *testing.T, ledger string, extra map[string]string) map[string]string {
	vars := map[string]string{
		"KNETRECON_NATS_URL":            p.nats,
		"KNETRECON_LEDGER":              ledger,
		"KNETRECON_ADMIN_ADDR":          "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT":          "100ms",
		"KNETRECON_CHECKOUT_URL":        p.api.URL,
		"KNETRECON_CHECKOUT_SECRET_KEY": simKey,
		"KNETRECON_WEBHOOK_KEYS":        simHookKy,
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

// poll waits for cond, failing after 15 s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The whole reconciler: webhooks through JetStream into the ledger, and the cron sweep
// recovering a capture whose webhooks were lost, on the fake clock.
func TestRunSweepsOnSchedule(t *testing.T) {
	clock := ckosim.NewFakeClock(time.Now().UTC().Truncate(time.Second))
	p := newPipeline(t, clock)
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	cfg, _, err := ParseConfig("run", nil, env(p.env(t, ledger, map[string]string{"KNETRECON_SWEEP_SCHEDULE": "@every 1s"})), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	m.Now = clock.Now
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	id := p.pay(t, 7_000)
	poll(t, "payment_pending applied", func() bool {
		d, err := m.Ledger().Payment(ctx, id)
		return err == nil && d.Status == payment.StatusPending
	})
	p.sim.DropNext(2)
	if _, err := p.sim.Complete(id, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	p.idle(t)
	if err := p.sim.Advance(7*time.Minute + time.Second); err != nil {
		t.Fatal(err)
	}
	poll(t, "the scheduled sweep to recover the capture", func() bool {
		d, err := m.Ledger().Payment(ctx, id)
		return err == nil && d.Status == payment.StatusCaptured && d.Captured == 7_000
	})
	// The sweep counts the check once it has read back what its fact did, just after the write.
	var metrics string
	deadline := time.Now().Add(10 * time.Second)
	for _, metrics = get(t, "http://"+m.AdminAddr()+"/metrics"); !strings.Contains(metrics, `knetrecon_sweep_checks_total{outcome="recovered"} 1`); _, metrics = get(t, "http://"+m.AdminAddr()+"/metrics") {
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack the recovered check:\n%s", grepLines(metrics, "knetrecon_sweep"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The sweep is recorded as done just after its last write: wait for the desk to say so.
	poll(t, "the desk to show the last sweep", func() bool {
		_, home := get(t, "http://"+m.AdminAddr()+"/")
		return regexp.MustCompile(`last at [0-9-]+ [0-9:]+ (&#43;|-)[0-9:]+: \d+ asked of Checkout.com, 0 stuck`).MatchString(home)
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The operator's commands: a dry run changes nothing; a real sweep voids; stuck lists what it
// could not resolve.
func TestSweepAndStuckCommands(t *testing.T) {
	p := newPipeline(t, nil) // real clock: the CLI runs on time.Now
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	vars := p.env(t, ledger, map[string]string{"KNETRECON_PENDING_TIMEOUT": "1ms", "KNETRECON_VOID_GRACE": "0s", "KNETRECON_STUCK_AFTER": "1h"})
	// Consume what the simulator sends, then stop: the commands work on the ledger alone.
	cfg, _, err := ParseConfig("run", nil, env(map[string]string{
		"KNETRECON_NATS_URL": p.nats, "KNETRECON_LEDGER": ledger, "KNETRECON_ADMIN_ADDR": "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT": "100ms", "KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_WEBHOOK_KEYS": simHookKy}), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = m.Close()
		}
	})
	ctx := context.Background()
	voidable := p.pay(t, 1_000)
	refused := p.pay(t, 2_000)
	for _, id := range []string{voidable, refused} {
		poll(t, "pending applied", func() bool { _, err := m.Ledger().Payment(ctx, id); return err == nil })
	}
	// Stopped here: the commands work on the ledger alone (applying the stream up to their own
	// facts, the hand void's webhook among them).
	stopped = true
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	cli := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, args, env(vars), &out, &errOut); code != 0 {
			t.Fatalf("reconciler %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	dry := cli("sweep", "--once", "--dry-run")
	if strings.Count(dry, "would_void") != 2 || !strings.Contains(dry, "dry run") {
		t.Fatalf("dry run printed:\n%s", dry)
	}
	if st, _ := p.sim.Payment(voidable); st.Status != "Pending" {
		t.Fatalf("dry run voided %s", voidable)
	}

	// Voids of the second payment are refused from now on: it becomes stuck.
	if _, err := p.sim.Void(voidable, "by hand"); err != nil {
		t.Fatal(err)
	}
	p.idle(t)
	p.sim.SetFaults(ckosim.Faults{VoidForbidden: true})
	var rep struct {
		Decisions []struct {
			PaymentID string `json:"payment_id"`
			Outcome   string `json:"outcome"`
		} `json:"decisions"`
		Stuck int `json:"stuck"`
	}
	if err := json.Unmarshal([]byte(cli("sweep", "--once", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, d := range rep.Decisions {
		outcomes[d.PaymentID] = d.Outcome
	}
	// The hand void's webhook reached the ledger before the sweep read its due list (the sweep's
	// settings fact went first, and the command applied the stream up to it): nothing to confirm.
	if _, asked := outcomes[voidable]; asked || outcomes[refused] != "void_refused" || rep.Stuck != 1 {
		t.Fatalf("sweep report %+v", rep)
	}
	var stuck []StuckPayment
	if err := json.Unmarshal([]byte(cli("stuck", "--json")), &stuck); err != nil {
		t.Fatal(err)
	}
	if len(stuck) != 1 || stuck[0].ID != refused || len(stuck[0].Checks) != 1 || stuck[0].Checks[0].Outcome != "void_refused" || stuck[0].DiscrepancyID == 0 {
		t.Fatalf("stuck = %+v", stuck)
	}
	if text := cli("stuck"); !strings.Contains(text, refused) || !strings.Contains(text, "void refused") {
		t.Fatalf("stuck printed:\n%s", text)
	}
	// The whole story of the payment, checks included.
	var detail struct {
		ID     string `json:"id"`
		Checks []struct {
			Outcome string `json:"outcome"`
			Error   string `json:"error"`
		} `json:"checks"`
		Discrepancies []struct {
			Kind string `json:"kind"`
		} `json:"discrepancies"`
	}
	if err := json.Unmarshal([]byte(cli("payment", refused, "--json")), &detail); err != nil {
		t.Fatal(err)
	}
	if len(detail.Checks) != 1 || detail.Checks[0].Outcome != "void_refused" || detail.Checks[0].Error == "" ||
		len(detail.Discrepancies) != 1 || detail.Discrepancies[0].Kind != "stuck" {
		t.Fatalf("payment --json = %+v", detail)
	}
	if text := cli("payment", refused); !strings.Contains(text, "sweep checks") || !strings.Contains(text, "void_refused") ||
		!strings.Contains(text, "next sweep check") {
		t.Fatalf("payment printed:\n%s", text)
	}
	// The voided payment is final: its verification is scheduled (KNETRECON_VERIFY_AFTER).
	if text := cli("payment", voidable); !strings.Contains(text, "next verification") {
		t.Fatalf("payment printed:\n%s", text)
	}
}

// The desk's "Ask Checkout.com now" on a payment whose capture webhooks were lost: the check
// learns the capture at once, before any sweep is due.
func TestDeskCheckNowRecoversACapture(t *testing.T) {
	p := newPipeline(t, nil)
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	cfg, _, err := ParseConfig("run", nil, env(p.env(t, ledger, map[string]string{"KNETRECON_SWEEP_SCHEDULE": "@every 1h"})), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	id := p.pay(t, 4_250)
	poll(t, "payment_pending applied", func() bool { _, err := m.Ledger().Payment(ctx, id); return err == nil })
	p.sim.DropNext(2)
	if _, err := p.sim.Complete(id, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	p.idle(t)

	base := "http://" + m.AdminAddr()
	_, page := get(t, base+"/payments/"+id)
	token := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	if !strings.Contains(page, `action="/payments/`+id+`/check"`) || token == nil {
		t.Fatalf("no check button:\n%s", page)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/payments/"+id+"/check", strings.NewReader(url.Values{"csrf": {token[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.QueryUnescape(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "recovered") {
		t.Fatalf("check: %d %s", resp.StatusCode, loc)
	}
	if d, err := m.Ledger().Payment(ctx, id); err != nil || d.Status != payment.StatusCaptured || d.Captured != 4_250 {
		t.Fatalf("after the check: %+v %v", d, err)
	}
	if _, page = get(t, base+"/payments/"+id); !strings.Contains(page, "<td>check</td><td>payment:"+id+"</td>") || !strings.Contains(page, "recovered") {
		t.Fatalf("the check is not in the payment's operator actions:\n%s", page)
	}
}
