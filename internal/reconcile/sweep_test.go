package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/events"
	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/reconcile/reconciletest"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

const (
	webhookKey = "whsec_sweep_test"
	secretKey  = "sk_sbox_sweep_test"
)

// sweepEnv is the sweep's world: the simulator over real HTTP, sending its webhooks to a sink
// that verifies and applies them to a real SQLite ledger, and one fake clock for all of them.
type sweepEnv struct {
	t       testing.TB
	clock   *ckosim.FakeClock
	sim     *ckosim.Sim
	ledger  *store.Ledger
	client  *checkout.Client
	sweeper *reconcile.Sweeper
	// road is the stream and consumer the sweep's facts travel through to the ledger.
	road    *reconciletest.Road
	sleeps  []time.Duration
	mu      sync.Mutex
	alerts  []reconcile.AlertMessage
	alertOK bool
	alerter *reconcile.Alerter
}

func newSweepEnv(t *testing.T, tune func(*reconcile.SweepConfig)) *sweepEnv {
	t.Helper()
	return newSweepEnvTB(t, tune, 1000)
}

// newSweepEnvTB builds the world with the client limited to rate requests/s.
func newSweepEnvTB(t testing.TB, tune func(*reconcile.SweepConfig), rate float64) *sweepEnv {
	t.Helper()
	e := &sweepEnv{t: t, clock: ckosim.NewFakeClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)), alertOK: true}
	e.ledger = storetest.MustOpenLedger(t)
	e.ledger.Now = e.clock.Now
	ring, err := checkout.NewKeyRing(checkout.Key{Secret: []byte(webhookKey)})
	if err != nil {
		t.Fatal(err)
	}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := ring.Verify(body, r.Header.Get(checkout.SignatureHeader)); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		e.apply(body)
	}))
	t.Cleanup(sink.Close)
	e.sim = ckosim.New(ckosim.Config{SecretKey: secretKey, WebhookURL: sink.URL, WebhookKey: webhookKey, Clock: e.clock, Seed: 7})
	t.Cleanup(func() { _ = e.sim.Close() })
	api := httptest.NewServer(e.sim.Handler())
	t.Cleanup(api.Close)
	ccfg := checkout.ClientConfig{BaseURL: api.URL, SecretKey: secretKey, RateLimit: rate, Burst: 10, MaxRetries: 3}
	if _, bench := t.(*testing.B); !bench {
		// Tests record the client's waits instead of waiting; a benchmark waits for real.
		ccfg.Sleep = func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.sleeps = append(e.sleeps, d)
			e.mu.Unlock()
			return ctx.Err()
		}
	}
	e.client, err = checkout.NewClient(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := reconcile.DefaultSweepConfig()
	cfg.Now = e.clock.Now
	if tune != nil {
		tune(&cfg)
	}
	if err := e.ledger.SetSchedule(context.Background(), cfg.Schedule(), "test"); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	if _, bench := t.(*testing.B); bench {
		log = zap.NewNop() // a benchmark prints every log line
	}
	e.road = reconciletest.MustRunRoad(t, e.ledger, nil)
	e.sweeper = reconcile.NewSweeper(e.ledger, e.road.Facts, e.client, log, nil, cfg)
	alertSink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m reconcile.AlertMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		e.mu.Lock()
		defer e.mu.Unlock()
		if !e.alertOK {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		e.alerts = append(e.alerts, m)
	}))
	t.Cleanup(alertSink.Close)
	e.alerter = reconcile.NewAlerter(e.ledger, e.road.Facts, alertSink.URL, zaptest.NewLogger(t), nil)
	return e
}

// apply is the road of a webhook after the stream: decode, Apply.
func (e *sweepEnv) apply(body []byte) store.Result {
	e.t.Helper()
	in, err := reconcile.Decode(body, events.Delivery{ReceivedAt: e.clock.Now()})
	if err != nil {
		e.t.Errorf("decode webhook: %v", err)
		return store.Result{}
	}
	res, err := e.ledger.Apply(context.Background(), in)
	if err != nil {
		e.t.Errorf("apply webhook: %v", err)
	}
	return res
}

func (e *sweepEnv) setAlertOK(ok bool) {
	e.mu.Lock()
	e.alertOK = ok
	e.mu.Unlock()
}

func (e *sweepEnv) idle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.sim.WaitIdle(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// newPayment creates a KNET payment whose customer lands on the KNET page; its payment_pending
// webhook reaches the ledger.
func (e *sweepEnv) newPayment(amount int64) string {
	e.t.Helper()
	c, err := e.sim.CreatePayment(ckosim.PaymentRequest{Amount: amount, Currency: "KWD", Reference: "ORD-1",
		Source: checkout.Source{Type: "knet", Language: "en"}})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.sim.Land(c.ID); err != nil {
		e.t.Fatal(err)
	}
	e.idle()
	return c.ID
}

func (e *sweepEnv) sweep(dry bool) reconcile.Report {
	e.t.Helper()
	rep, err := e.sweeper.Sweep(context.Background(), dry)
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

func (e *sweepEnv) payment(id string) *store.PaymentDetail {
	e.t.Helper()
	p, err := e.ledger.Payment(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *sweepEnv) advance(d time.Duration) {
	e.t.Helper()
	if err := e.sim.Advance(d); err != nil {
		e.t.Fatal(err)
	}
	e.idle()
}

func kinds(p *store.PaymentDetail) map[payment.Kind]int {
	out := map[payment.Kind]int{}
	for _, d := range p.Discrepancies {
		out[d.Kind]++
	}
	return out
}

func decisionFor(rep reconcile.Report, id string) reconcile.Decision {
	for _, d := range rep.Decisions {
		if d.PaymentID == id {
			return d
		}
	}
	return reconcile.Decision{}
}

func TestSweepRecoversLostCaptureOnce(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(12_500)
	e.sim.DropNext(2) // payment_approved and payment_captured are lost
	if st, err := e.sim.Complete(id, ckosim.TestCard); err != nil || st != "Captured" {
		t.Fatalf("complete = %s, %v", st, err)
	}
	e.idle()
	if p := e.payment(id); p.Status != payment.StatusPending {
		t.Fatalf("ledger status before the sweep = %s, want Pending", p.Status)
	}

	e.advance(6 * time.Minute)
	if rep := e.sweep(false); len(rep.Decisions) != 0 {
		t.Fatalf("sweep at 6m checked %v; nothing is due before 7m", rep.Decisions)
	}
	e.advance(90 * time.Second)
	rep := e.sweep(false)
	if d := decisionFor(rep, id); d.Outcome != reconcile.CheckRecovered {
		t.Fatalf("decision = %+v, want recovered", d)
	}
	p := e.payment(id)
	if p.Status != payment.StatusCaptured || p.Captured != 12_500 || len(p.Postings) != 1 || p.Postings[0].Origin != "api" {
		t.Fatalf("after sweep: status %s captured %d postings %+v", p.Status, p.Captured, p.Postings)
	}
	if kinds(p)[payment.KindWebhookMissing] != 1 {
		t.Fatalf("discrepancies = %v, want one webhook_missing", kinds(p))
	}
	// The lost webhooks arrive after all (Checkout.com's retry): nothing is posted twice.
	for _, h := range e.sim.Webhooks() {
		if h.PaymentID == id && h.Type == "payment_captured" {
			body := redeliver(t, e, h.EventID)
			if res := e.apply(body); res.Outcome != store.OutcomeAlreadyPosted {
				t.Fatalf("late payment_captured outcome = %s, want already_posted", res.Outcome)
			}
		}
	}
	p = e.payment(id)
	if p.Captured != 12_500 || len(p.Postings) != 1 {
		t.Fatalf("after the late webhook: captured %d, %d postings", p.Captured, len(p.Postings))
	}
	// The webhook was late, not lost: its discrepancy is resolved, and says so.
	if len(p.Discrepancies) != 1 || p.Discrepancies[0].ResolvedAt == nil || !strings.Contains(p.Discrepancies[0].Resolution, "arrived after all") {
		t.Fatalf("webhook_missing after the late webhook: %+v", p.Discrepancies)
	}
	// Final now: the next sweep does not ask again.
	e.advance(time.Hour)
	if rep := e.sweep(false); len(rep.Decisions) != 0 {
		t.Fatalf("final payment checked again: %+v", rep.Decisions)
	}
}

// redeliver rebuilds a lost webhook's body as Checkout.com would re-send it.
func redeliver(t *testing.T, e *sweepEnv, eventID string) []byte {
	t.Helper()
	for _, h := range e.sim.Webhooks() {
		if h.EventID == eventID {
			pay, err := e.sim.Payment(h.PaymentID)
			if err != nil {
				t.Fatal(err)
			}
			actions, err := e.client.GetPaymentActions(context.Background(), h.PaymentID)
			if err != nil {
				t.Fatal(err)
			}
			var act checkout.Action
			for _, a := range actions {
				if a.Type == "Capture" {
					act = a
				}
			}
			body, _ := json.Marshal(map[string]any{"id": h.EventID, "type": h.Type, "version": "1.0.1",
				"created_on": h.CreatedOn.Format(time.RFC3339Nano),
				"data":       map[string]any{"id": pay.ID, "action_id": act.ID, "amount": act.Amount, "currency": pay.Currency}})
			return body
		}
	}
	t.Fatalf("no webhook %s", eventID)
	return nil
}

func TestSweepVoidsAbandonedPayment(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(5_000)
	e.advance(7*time.Minute + time.Second)
	rep := e.sweep(false)
	if d := decisionFor(rep, id); d.Outcome != reconcile.CheckStillPending || d.Action != "" {
		t.Fatalf("at 7m: %+v, want still_pending without a void (grace)", d)
	}
	e.advance(5 * time.Minute)
	rep = e.sweep(false)
	d := decisionFor(rep, id)
	if d.Action != reconcile.ActionVoidRequested {
		t.Fatalf("at 12m: %+v, want a void", d)
	}
	e.idle()
	p := e.payment(id)
	if p.Status != payment.StatusVoided || !p.Final {
		t.Fatalf("after the void: %s (final %v), want Voided", p.Status, p.Final)
	}
	if st, _ := e.sim.Payment(id); st.Status != "Voided" {
		t.Fatalf("provider status %s, want Voided", st.Status)
	}
	checks, err := e.ledger.Checks(context.Background(), id, 0)
	if err != nil || len(checks) != 2 || checks[0].Action != reconcile.ActionVoidRequested {
		t.Fatalf("checks = %+v, %v", checks, err)
	}
}

func TestSweepConfirmsExpiry(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(1_000)
	e.advance(7*time.Minute + time.Second)
	e.sim.DropNext(1) // payment_expired is lost
	if st, err := e.sim.Complete(id, ckosim.TestCard); err != nil || st != "Expired" {
		t.Fatalf("late completion = %s, %v; want Expired", st, err)
	}
	e.idle()
	rep := e.sweep(false)
	if d := decisionFor(rep, id); d.Outcome != reconcile.CheckExpiryConfirmed {
		t.Fatalf("decision %+v, want expiry_confirmed", d)
	}
	if p := e.payment(id); p.Status != payment.StatusExpired || !p.Final || p.Captured != 0 {
		t.Fatalf("ledger %s final %v captured %d", p.Status, p.Final, p.Captured)
	}
}

func TestCaptureAfterLedgerExpiryRaisesAndAlertsOnce(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(2_000)
	// The customer paid at the last second; the capture webhooks are lost, but a payment_expired
	// (say, from a misbehaving retry) told the ledger it expired.
	e.sim.DropNext(2)
	if _, err := e.sim.Complete(id, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	e.idle()
	expired, _ := json.Marshal(map[string]any{"id": "evt_lateexpiry", "type": "payment_expired",
		"created_on": e.clock.Now().Format(time.RFC3339), "data": map[string]any{"id": id, "amount": 2000, "currency": "KWD"}})
	e.apply(expired)
	if p := e.payment(id); p.Status != payment.StatusExpired {
		t.Fatalf("ledger %s, want Expired", p.Status)
	}
	// Final in the ledger, so the sweep's open list no longer asks: the capture webhook, re-sent
	// by Checkout.com, brings the money in (and if it never came, the verification 31 hours on
	// would: TestVerifyRecoversCaptureAfterLedgerExpiry).
	pay, err := e.client.GetPayment(context.Background(), id)
	if err != nil || pay.Status != "Captured" {
		t.Fatalf("provider %+v, %v", pay, err)
	}
	body := redeliver(t, e, firstOfType(e, id, "payment_captured"))
	e.apply(body)
	p := e.payment(id)
	if p.Status != payment.StatusCaptured || kinds(p)[payment.KindCapturedAfterExpiry] != 1 {
		t.Fatalf("ledger %s discrepancies %v; want Captured and captured_after_expiry", p.Status, kinds(p))
	}
	if n, err := e.alerter.Deliver(context.Background()); err != nil || n != 1 {
		t.Fatalf("first alert pass sent %d, %v; want 1", n, err)
	}
	e.sweep(false)
	if n, err := e.alerter.Deliver(context.Background()); err != nil || n != 0 {
		t.Fatalf("second alert pass sent %d, %v; want 0", n, err)
	}
	if len(e.alerts) != 1 || e.alerts[0].Kind != string(payment.KindCapturedAfterExpiry) || e.alerts[0].PaymentID != id {
		t.Fatalf("alerts = %+v", e.alerts)
	}
}

func firstOfType(e *sweepEnv, id, typ string) string {
	for _, h := range e.sim.Webhooks() {
		if h.PaymentID == id && h.Type == typ {
			return h.EventID
		}
	}
	e.t.Fatalf("no %s webhook for %s", typ, id)
	return ""
}

func TestVoidRefusedMakesStuckAlertedOnceThenResolved(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(3_000)
	e.sim.SetFaults(ckosim.Faults{VoidForbidden: true})
	e.advance(12*time.Minute + time.Second)
	rep := e.sweep(false)
	if d := decisionFor(rep, id); d.Outcome != reconcile.CheckVoidRefused {
		t.Fatalf("decision %+v, want void_refused", d)
	}
	if kinds(e.payment(id))[reconcile.KindStuck] != 1 {
		t.Fatalf("discrepancies %v, want stuck", kinds(e.payment(id)))
	}
	// The alert endpoint is down at first: the alert waits, the sweep does not.
	e.setAlertOK(false)
	if _, err := e.alerter.Deliver(context.Background()); err == nil {
		t.Fatal("delivery to a failing endpoint reported success")
	}
	e.setAlertOK(true)
	for range 3 {
		e.advance(time.Hour)
		e.sweep(false)
		if _, err := e.alerter.Deliver(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.alerts) != 1 || e.alerts[0].State != "open" || e.alerts[0].Kind != string(reconcile.KindStuck) {
		t.Fatalf("alerts after three sweeps = %+v, want one open stuck alert", e.alerts)
	}
	// The customer finally comes back: Checkout.com expires it; the stuck mark resolves.
	if _, err := e.sim.Expire(id); err != nil {
		t.Fatal(err)
	}
	e.idle()
	rep = e.sweep(false)
	if len(rep.Unstuck) != 1 || rep.Stuck != 0 {
		t.Fatalf("report unstuck %v stuck %d", rep.Unstuck, rep.Stuck)
	}
	if _, err := e.alerter.Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.alerts) != 2 || e.alerts[1].State != "resolved" {
		t.Fatalf("alerts = %+v, want open then resolved", e.alerts)
	}
}

func TestStuckAfterTimeout(t *testing.T) {
	e := newSweepEnv(t, func(c *reconcile.SweepConfig) { c.VoidPending = false })
	id := e.newPayment(1_000)
	e.advance(29 * time.Minute)
	if rep := e.sweep(false); rep.Stuck != 0 {
		t.Fatalf("stuck at 29m: %+v", rep)
	}
	e.advance(2 * time.Minute)
	rep := e.sweep(false)
	if rep.Stuck != 1 || len(rep.NewStuck) != 1 || rep.NewStuck[0] != id {
		t.Fatalf("at 31m: stuck %d new %v", rep.Stuck, rep.NewStuck)
	}
	if st, _ := e.sim.Payment(id); st.Status != "Pending" {
		t.Fatalf("KNETRECON_VOID_PENDING=false still voided: %s", st.Status)
	}
}

func TestSweep429StormBacksOffAndLosesNothing(t *testing.T) {
	e := newSweepEnv(t, nil)
	var ids []string
	for range 5 {
		id := e.newPayment(1_000)
		ids = append(ids, id)
	}
	e.sim.DropNext(10)
	for _, id := range ids {
		if _, err := e.sim.Complete(id, ckosim.TestCard); err != nil {
			t.Fatal(err)
		}
	}
	e.idle()
	e.sim.SetFaults(ckosim.Faults{API429Rate: 1, RetryAfter: ckosim.Duration(2 * time.Second)})
	before := len(e.sim.RequestTimes())
	e.advance(7*time.Minute + time.Second)
	rep := e.sweep(false)
	if rep.Outcomes[reconcile.CheckError] != 5 {
		t.Fatalf("outcomes %v, want 5 errors", rep.Outcomes)
	}
	// Each payment was tried at most 1+MaxRetries times, and every retry waited out Retry-After
	// (the other waits are the client's rate limiter, far shorter).
	requests := len(e.sim.RequestTimes()) - before
	if requests > 5*4 {
		t.Fatalf("%d API requests during the storm, want at most 20", requests)
	}
	e.mu.Lock()
	retryWaits := 0
	for _, d := range e.sleeps {
		switch {
		case d >= 2*time.Second:
			retryWaits++
		case d > 100*time.Millisecond:
			t.Fatalf("slept %s: neither a rate-limit wait nor Retry-After", d)
		}
	}
	e.mu.Unlock()
	if retryWaits != requests-5 {
		t.Fatalf("%d waits of Retry-After for %d retries", retryWaits, requests-5)
	}
	// A sweep right after meets nothing due: the next checks were pushed back.
	before = len(e.sim.RequestTimes())
	if rep := e.sweep(false); len(rep.Decisions) != 0 || len(e.sim.RequestTimes()) != before {
		t.Fatalf("sweep right after the storm asked again: %+v", rep.Decisions)
	}
	e.sim.SetFaults(ckosim.Faults{})
	e.advance(2 * time.Minute)
	rep = e.sweep(false)
	for _, id := range ids {
		if p := e.payment(id); p.Status != payment.StatusCaptured || p.Captured != 1_000 {
			t.Fatalf("%s after the storm: %s %d", id, p.Status, p.Captured)
		}
	}
}

func TestSweepUnknownAtProvider(t *testing.T) {
	e := newSweepEnv(t, nil)
	body, _ := json.Marshal(map[string]any{"id": "evt_ghost", "type": "payment_pending",
		"created_on": e.clock.Now().Format(time.RFC3339), "data": map[string]any{"id": "pay_ghostghostghostghostghostgh", "amount": 1000, "currency": "KWD"}})
	e.apply(body)
	e.advance(8 * time.Minute)
	rep := e.sweep(false)
	if d := decisionFor(rep, "pay_ghostghostghostghostghostgh"); d.Outcome != reconcile.CheckNotFound {
		t.Fatalf("decision %+v, want not_found", d)
	}
	p := e.payment("pay_ghostghostghostghostghostgh")
	if kinds(p)[payment.KindUnknownAtProvider] != 1 || p.Status != payment.StatusPending {
		t.Fatalf("payment %s discrepancies %v", p.Status, kinds(p))
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(1_000)
	e.advance(13 * time.Minute)
	before, err := e.ledger.Totals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rep := e.sweep(true)
	if d := decisionFor(rep, id); d.Action != "would_void" {
		t.Fatalf("dry run decision %+v, want would_void", d)
	}
	after, _ := e.ledger.Totals(context.Background())
	checks, _ := e.ledger.Checks(context.Background(), id, 0)
	if before != after || len(checks) != 0 {
		t.Fatalf("dry run wrote: totals %+v -> %+v, %d checks", before, after, len(checks))
	}
	if st, _ := e.sim.Payment(id); st.Status != "Pending" {
		t.Fatalf("dry run voided: %s", st.Status)
	}
}

func TestSweepsNeverOverlap(t *testing.T) {
	e := newSweepEnv(t, nil)
	e.newPayment(1_000)
	e.advance(8 * time.Minute)
	e.sim.SetFaults(ckosim.Faults{Latency: ckosim.Duration(300 * time.Millisecond)})
	before := len(e.sim.RequestTimes())
	done := make(chan error, 1)
	go func() {
		_, err := e.sweeper.Sweep(context.Background(), false)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.sim.RequestTimes()) == before {
		if time.Now().After(deadline) {
			t.Fatal("first sweep never reached the API")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := e.sweeper.Sweep(context.Background(), false); !errors.Is(err, reconcile.ErrSweepRunning) {
		t.Fatalf("second sweep = %v, want ErrSweepRunning", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSweepConfigValidate(t *testing.T) {
	c := reconcile.DefaultSweepConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.StuckAfter = time.Minute
	c.Backoff = []float64{2, 1}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "KNETRECON_STUCK_AFTER") || !strings.Contains(err.Error(), "KNETRECON_SWEEP_BACKOFF") {
		t.Fatalf("Validate = %v", err)
	}
}

func TestSweepAmountMismatchRecorded(t *testing.T) {
	e := newSweepEnv(t, nil)
	e.sim.DropNext(1) // its payment_pending is lost; the ledger hears a wrong amount instead
	c, err := e.sim.CreatePayment(ckosim.PaymentRequest{Amount: 1_000, Currency: "KWD", Reference: "ORD-2",
		Source: checkout.Source{Type: "knet", Language: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Land(c.ID); err != nil {
		t.Fatal(err)
	}
	e.idle()
	body, _ := json.Marshal(map[string]any{"id": "evt_wrongamount", "type": "payment_pending",
		"created_on": e.clock.Now().Format(time.RFC3339), "data": map[string]any{"id": c.ID, "amount": 9_990, "currency": "KWD"}})
	e.apply(body)
	e.advance(8 * time.Minute)
	e.sweep(false)
	p := e.payment(c.ID)
	if len(p.Discrepancies) != 1 || p.Discrepancies[0].Kind != payment.KindAmountMismatch || p.Discrepancies[0].Origin != "api" {
		t.Fatalf("discrepancies %+v, want one amount_mismatch from the API", p.Discrepancies)
	}
	if p.Amount != 9_990 {
		t.Fatalf("ledger amount %d: the API's answer must not silently replace it", p.Amount)
	}
}

// A ledger that made a young payment due at once (its schedule's first check after zero, as
// before the sweep's holder set its own): the sweep publishes its schedule, which moves the first
// check of every payment never checked, and asks nothing.
func TestSweepSchedulesYoungPayments(t *testing.T) {
	e := newSweepEnv(t, nil)
	if err := e.ledger.SetSchedule(context.Background(), store.Schedule{}, "test"); err != nil {
		t.Fatal(err)
	}
	id := e.newPayment(1_000)
	e.advance(time.Minute)
	before := len(e.sim.RequestTimes())
	rep := e.sweep(false)
	if len(rep.Outcomes) != 0 || len(e.sim.RequestTimes()) != before {
		t.Fatalf("outcomes %v, %d API requests", rep.Outcomes, len(e.sim.RequestTimes())-before)
	}
	if got := e.ledger.Schedule(); got.FirstCheckAfter != 7*time.Minute {
		t.Fatalf("the ledger's schedule %+v, want the sweep's", got)
	}
	p := e.payment(id)
	if want := p.AgeBase().Add(7 * time.Minute); !p.NextCheckAt.Equal(want) {
		t.Fatalf("next check %s, want %s", p.NextCheckAt, want)
	}
	if rep := e.sweep(false); len(rep.Outcomes) != 0 {
		t.Fatalf("second sweep met it again: %v", rep.Outcomes)
	}
}
