package reconcile_test

import (
	"encoding/json"
	"testing"
	"time"

	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// capturedPayment is a KNET payment completed on the simulator, its webhooks applied.
func (e *sweepEnv) capturedPayment(amount int64) string {
	e.t.Helper()
	id := e.newPayment(amount)
	if _, err := e.sim.Complete(id, ckosim.TestCard); err != nil {
		e.t.Fatal(err)
	}
	e.idle()
	if p := e.payment(id); p.Status != payment.StatusCaptured || p.Captured != amount {
		e.t.Fatalf("after completion: %s captured %d", p.Status, p.Captured)
	}
	return id
}

func verifyAt(p *store.PaymentDetail) time.Time {
	if p.VerifyAt == nil {
		return time.Time{}
	}
	return *p.VerifyAt
}

// A refund whose webhook was lost for good (Checkout.com gave up retrying) is found by the
// verification 31 hours after the payment's latest event known, posted once, and flagged. The
// steps then count from the refund, the latest event now known; the payment, still holding
// money, is verified at each and then no more.
func TestVerifyRecoversLostRefund(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.capturedPayment(10_000)
	captured := e.payment(id)
	anchor := *captured.LastEventAt
	if got, want := verifyAt(captured), anchor.Add(31*time.Hour); !got.Equal(want) {
		t.Fatalf("verify_at %s, want %s", got, want)
	}
	e.advance(2 * time.Hour)
	e.sim.DropNext(1)
	if _, err := e.sim.Refund(id, 4_000, "partial"); err != nil {
		t.Fatal(err)
	}
	e.idle()
	if p := e.payment(id); p.Refunded != 0 {
		t.Fatalf("the refund webhook was to be lost, yet refunded %d", p.Refunded)
	}
	if rep := e.sweep(false); decisionFor(rep, id).PaymentID != "" {
		t.Fatalf("verified before its time: %+v", decisionFor(rep, id))
	}

	e.advance(29 * time.Hour)
	dry := decisionFor(e.sweep(true), id)
	if !dry.Verification || dry.Outcome != reconcile.CheckVerified || len(dry.Applied) == 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if p := e.payment(id); p.Refunded != 0 || len(p.Checks) != 0 || !verifyAt(p).Equal(anchor.Add(31*time.Hour)) {
		t.Fatalf("the dry run wrote: refunded %d, %d checks, verify_at %s", p.Refunded, len(p.Checks), verifyAt(p))
	}
	d := decisionFor(e.sweep(false), id)
	if !d.Verification || d.Outcome != reconcile.CheckRecovered || d.ProviderStatus != "Partially Refunded" {
		t.Fatalf("verification: %+v", d)
	}
	p := e.payment(id)
	if p.Refunded != 4_000 || p.Status != payment.StatusPartiallyRefunded || kinds(p)[payment.KindWebhookMissing] != 1 {
		t.Fatalf("after recovery: %s refunded %d, discrepancies %v", p.Status, p.Refunded, kinds(p))
	}
	refund := *p.LastEventAt
	if refund.Sub(anchor) < 2*time.Hour {
		t.Fatalf("latest event %s, want the refund's time, 2h after the capture at %s", refund, anchor)
	}
	if got, want := verifyAt(p), refund.Add(31*time.Hour); !got.Equal(want) {
		t.Fatalf("next verification %s, want %s (31 hours after the refund)", got, want)
	}
	if rep := e.sweep(false); decisionFor(rep, id).PaymentID != "" {
		t.Fatalf("verified twice in one step: %+v", decisionFor(rep, id))
	}

	e.advance(2 * time.Hour)
	if d := decisionFor(e.sweep(false), id); d.Outcome != reconcile.CheckVerified || !d.NextCheckAt.Equal(refund.Add(8*24*time.Hour)) {
		t.Fatalf("31 hours after the refund: %+v", d)
	}
	e.advance(8*24*time.Hour - 31*time.Hour)
	if d := decisionFor(e.sweep(false), id); d.Outcome != reconcile.CheckVerified || !d.NextCheckAt.Equal(refund.Add(32*24*time.Hour)) {
		t.Fatalf("8-day verification: %+v", d)
	}
	e.advance(24 * 24 * time.Hour)
	if d := decisionFor(e.sweep(false), id); d.Outcome != reconcile.CheckVerified || !d.NextCheckAt.IsZero() {
		t.Fatalf("32-day verification: %+v", d)
	}
	if p := e.payment(id); p.VerifyAt != nil || p.Refunded != 4_000 || len(p.Postings) != 2 {
		t.Fatalf("after the last step: verify_at %v, refunded %d, %d postings", p.VerifyAt, p.Refunded, len(p.Postings))
	}
	e.advance(365 * 24 * time.Hour)
	if rep := e.sweep(false); len(rep.Decisions) != 0 {
		t.Fatalf("a year later: %+v", rep.Decisions)
	}
}

// A final payment holding no money is verified once; one whose API keeps failing is asked again
// hourly until MaxErrors failures in a row, then that step is given up for the next.
func TestVerifyOnceWithoutMoneyAndErrors(t *testing.T) {
	e := newSweepEnv(t, func(c *reconcile.SweepConfig) { c.MaxErrors = 2 })
	expired := e.newPayment(3_000)
	if _, err := e.sim.Expire(expired); err != nil {
		t.Fatal(err)
	}
	e.idle()
	if p := e.payment(expired); p.Status != payment.StatusExpired || p.VerifyAt == nil {
		t.Fatalf("expired payment: %s, verify_at %v", p.Status, p.VerifyAt)
	}
	e.advance(31 * time.Hour)
	if d := decisionFor(e.sweep(false), expired); d.Outcome != reconcile.CheckVerified || !d.Verification || !d.NextCheckAt.IsZero() {
		t.Fatalf("expired payment's verification: %+v", d)
	}
	if p := e.payment(expired); p.VerifyAt != nil || len(p.Checks) != 1 {
		t.Fatalf("a payment without money: verify_at %v, %d checks", p.VerifyAt, len(p.Checks))
	}

	failing := e.capturedPayment(5_000)
	anchor := *e.payment(failing).LastEventAt
	e.advance(31 * time.Hour)
	e.sim.SetFaults(ckosim.Faults{API5xxRate: 1})
	d := decisionFor(e.sweep(false), failing)
	if d.Outcome != reconcile.CheckError || !d.NextCheckAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("first failure: %+v", d)
	}
	e.advance(time.Hour)
	d = decisionFor(e.sweep(false), failing)
	if d.Outcome != reconcile.CheckError || !d.NextCheckAt.Equal(anchor.Add(8*24*time.Hour)) {
		t.Fatalf("second failure in a row: %+v, want the 8-day step next", d)
	}
	e.sim.SetFaults(ckosim.Faults{})
	e.advance(8*24*time.Hour - 32*time.Hour)
	if d := decisionFor(e.sweep(false), failing); d.Outcome != reconcile.CheckVerified {
		t.Fatalf("8-day verification: %+v", d)
	}
}

// A capture whose webhooks were all lost, on a payment the ledger holds as Expired, is found by
// the verification: the money is posted, as a lost webhook and a capture after expiry.
func TestVerifyRecoversCaptureAfterLedgerExpiry(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(2_000)
	e.sim.DropNext(2) // payment_approved and payment_captured, never delivered
	if _, err := e.sim.Complete(id, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	e.idle()
	expired, _ := json.Marshal(map[string]any{"id": "evt_lateexpiry", "type": "payment_expired",
		"created_on": e.clock.Now().Format(time.RFC3339), "data": map[string]any{"id": id, "amount": 2000, "currency": "KWD"}})
	e.apply(expired)
	if p := e.payment(id); p.Status != payment.StatusExpired || p.VerifyAt == nil {
		t.Fatalf("ledger %s, verify_at %v; want Expired and a verification", p.Status, p.VerifyAt)
	}
	e.advance(31 * time.Hour)
	d := decisionFor(e.sweep(false), id)
	if !d.Verification || d.Outcome != reconcile.CheckRecovered || d.ProviderStatus != "Captured" {
		t.Fatalf("verification: %+v", d)
	}
	p := e.payment(id)
	k := kinds(p)
	if p.Status != payment.StatusCaptured || p.Captured != 2_000 || k[payment.KindCapturedAfterExpiry] != 1 || k[payment.KindWebhookMissing] != 1 {
		t.Fatalf("ledger %s captured %d, discrepancies %v", p.Status, p.Captured, k)
	}
}

// A backlog of verifications is worked off a bounded number per sweep, earliest first, so that
// the open payments' sweeps keep their pace.
func TestVerifyPerSweepBounded(t *testing.T) {
	e := newSweepEnv(t, func(c *reconcile.SweepConfig) { c.VerifyPerSweep = 2 })
	var ids []string
	for range 3 {
		ids = append(ids, e.capturedPayment(1_000))
		e.advance(time.Minute)
	}
	e.advance(31 * time.Hour)
	verified := func(rep reconcile.Report) []string {
		var out []string
		for _, d := range rep.Decisions {
			if d.Verification {
				out = append(out, d.PaymentID)
			}
		}
		return out
	}
	if got := verified(e.sweep(false)); len(got) != 2 || got[0] != ids[0] || got[1] != ids[1] {
		t.Fatalf("first sweep verified %v, want the two earliest of %v", got, ids)
	}
	if got := verified(e.sweep(false)); len(got) != 1 || got[0] != ids[2] {
		t.Fatalf("second sweep verified %v, want %s", got, ids[2])
	}
}
