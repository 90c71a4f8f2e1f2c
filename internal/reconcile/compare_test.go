package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// fakeWebhook is a webhook Checkout.com never sent for payment id (applied straight to the ledger).
func (e *sweepEnv) fakeWebhook(id, typ, action string, amount int64) {
	e.t.Helper()
	e.apply(fmt.Appendf(nil, `{"id":"evt_fake_%s","type":%q,"created_on":%q,"data":{"id":%q,"action_id":%q,"amount":%d,"currency":"KWD"}}`,
		action, typ, e.clock.Now().Format(time.RFC3339Nano), id, action, amount))
}

// providerDetails returns the details of the payment's open discrepancy of kind raised by the
// comparison with Checkout.com.
func providerDetails(t *testing.T, p *store.PaymentDetail, kind payment.Kind) map[string]any {
	t.Helper()
	for _, d := range p.Discrepancies {
		if d.Kind == kind && d.Subject == store.SubjectProvider && d.ResolvedAt == nil {
			var m map[string]any
			if err := json.Unmarshal([]byte(d.Details), &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no open %s from the comparison: %v", kind, kinds(p))
	return nil
}

// TestLedgerAheadOfProvider: the ledger holds Captured 1,000 while Checkout.com says Voided with
// nothing captured (a capture Checkout.com never made). The verification reports status_mismatch,
// amount_mismatch (both sides' figures) and captured_after_void, and overwrites nothing.
func TestLedgerAheadOfProvider(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.newPayment(1000)
	e.sim.DropNext(1)
	if _, err := e.sim.Void(id, "void"); err != nil {
		t.Fatal(err)
	}
	e.idle()
	e.fakeWebhook(id, payment.EventCaptured, "act_ghost", 1000)
	if p := e.payment(id); p.Status != payment.StatusCaptured || p.Captured != 1000 {
		t.Fatalf("set-up: %s %d", p.Status, p.Captured)
	}
	e.advance(32 * time.Hour)
	d := decisionFor(e.sweep(false), id)
	if !d.Verification || d.ProviderStatus != "Voided" {
		t.Fatalf("verification: %+v", d)
	}
	p := e.payment(id)
	if p.Status != payment.StatusCaptured || p.Captured != 1000 {
		t.Fatalf("the comparison overwrote the ledger: %s captured %d", p.Status, p.Captured)
	}
	k := kinds(p)
	if k[payment.KindStatusMismatch] != 1 || k[payment.KindAmountMismatch] != 1 || k[payment.KindCapturedAfterVoid] != 1 {
		t.Fatalf("discrepancies %v", k)
	}
	st := providerDetails(t, p, payment.KindStatusMismatch)
	am := providerDetails(t, p, payment.KindAmountMismatch)
	if st["ledger_status"] != "Captured" || st["provider_status"] != "Voided" || am["ledger_captured"] != 1000.0 || am["provider_captured"] != 0.0 {
		t.Fatalf("details: %v / %v", st, am)
	}
	// Every money kind is announced on the alert webhook.
	if _, err := e.alerter.Deliver(context.Background()); err != nil {
		t.Fatal(err)
	}
	announced := map[string]bool{}
	for _, a := range e.alerts {
		announced[a.Kind] = true
	}
	for _, k := range []payment.Kind{payment.KindStatusMismatch, payment.KindAmountMismatch, payment.KindCapturedAfterVoid} {
		if !announced[string(k)] {
			t.Errorf("%s not announced: %v", k, announced)
		}
	}
}

// TestWebhookMissingAnnouncedAfterADay: money recovered by the sweep opens webhook_missing; it is
// announced only once it has been open a day (most are late webhooks), and never when the late
// webhook resolves it first.
func TestWebhookMissingAnnouncedAfterADay(t *testing.T) {
	e := newSweepEnv(t, nil)
	e.alerter.Now = e.clock.Now
	id := e.capturedPayment(3000)
	e.sim.DropNext(1)
	if _, err := e.sim.Refund(id, 1000, "lost"); err != nil {
		t.Fatal(err)
	}
	e.idle()
	e.advance(32 * time.Hour)
	e.sweep(false)
	if k := kinds(e.payment(id)); k[payment.KindWebhookMissing] != 1 {
		t.Fatalf("discrepancies %v", k)
	}
	count := func() int {
		n := 0
		for _, a := range e.alerts {
			if a.Kind == string(payment.KindWebhookMissing) {
				n++
			}
		}
		return n
	}
	if _, err := e.alerter.Deliver(context.Background()); err != nil || count() != 0 {
		t.Fatalf("announced at once: %d %v", count(), err)
	}
	e.clock.Advance(25 * time.Hour)
	if _, err := e.alerter.Deliver(context.Background()); err != nil || count() != 1 {
		t.Fatalf("after a day: %d announcements, %v", count(), err)
	}
}

// TestLedgerBehindProviderOnRefunds: the ledger holds Refunded while Checkout.com says Captured
// with nothing refunded. Both directions are differences.
func TestLedgerRefundedProviderCaptured(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.capturedPayment(1000)
	e.fakeWebhook(id, payment.EventRefunded, "act_ghost_refund", 1000)
	if p := e.payment(id); p.Status != payment.StatusRefunded {
		t.Fatalf("set-up: %s", p.Status)
	}
	e.advance(32 * time.Hour)
	e.sweep(false)
	p := e.payment(id)
	if k := kinds(p); k[payment.KindStatusMismatch] != 1 || k[payment.KindAmountMismatch] != 1 {
		t.Fatalf("discrepancies %v", k)
	}
	am := providerDetails(t, p, payment.KindAmountMismatch)
	if am["ledger_refunded"] != 1000.0 || am["provider_refunded"] != 0.0 || am["provider_status"] != "Captured" {
		t.Fatalf("details %v", am)
	}
	if p.Status != payment.StatusRefunded || p.Refunded != 1000 {
		t.Fatalf("overwritten: %s %d", p.Status, p.Refunded)
	}
}

// TestAgreementRaisesNothing: a payment the ledger and Checkout.com agree on (captured, then
// partly refunded, every webhook delivered) is verified with no discrepancy.
func TestAgreementRaisesNothing(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.capturedPayment(5000)
	if _, err := e.sim.Refund(id, 2000, "partial"); err != nil {
		t.Fatal(err)
	}
	e.idle()
	e.advance(32 * time.Hour)
	if d := decisionFor(e.sweep(false), id); d.Outcome != reconcile.CheckVerified || len(d.Discrepancies) != 0 {
		t.Fatalf("verification: %+v", d)
	}
	if k := kinds(e.payment(id)); len(k) != 0 {
		t.Fatalf("discrepancies %v", k)
	}
}

// TestCompareResolvesAndWaitsForWebhooks: at the store, an agreement resolves what an earlier
// comparison opened, and a webhook applied after the API was asked postpones the comparison.
func TestCompareResolvesAndWaitsForWebhooks(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.capturedPayment(1000)
	ctx := context.Background()
	compare := func(v store.ProviderView) []payment.Kind {
		t.Helper()
		var got []payment.Kind
		if err := e.ledger.Update(ctx, func(tx *store.Tx) error {
			var err error
			got, err = tx.CompareWithProvider(ctx, id, v)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	now := e.clock.Now()
	if got := compare(store.ProviderView{Status: payment.StatusPending, Balances: true, AskedAt: now}); len(got) != 2 {
		t.Fatalf("opened %v, want status and amount", got)
	}
	if got := compare(store.ProviderView{Status: payment.StatusPending, Balances: true, AskedAt: now}); len(got) != 0 {
		t.Fatalf("opened again %v", got)
	}
	if got := compare(store.ProviderView{Status: payment.StatusCaptured, Currency: "KWD", Balances: true, Captured: 1000, AskedAt: now}); len(got) != 0 {
		t.Fatalf("agreement opened %v", got)
	}
	for _, d := range e.payment(id).Discrepancies {
		if d.Subject == store.SubjectProvider && d.ResolvedAt == nil {
			t.Fatalf("still open after agreement: %+v", d)
		}
	}
	// A webhook applied after the API was asked: the API's view is older than the ledger's.
	e.fakeWebhook(id, payment.EventRefunded, "act_late", 400)
	if got := compare(store.ProviderView{Status: payment.StatusCaptured, Balances: true, Captured: 1000, AskedAt: now.Add(-time.Second)}); len(got) != 0 {
		t.Fatalf("compared against an answer older than the ledger: %v", got)
	}
}

// TestKNETIdsLearnedOnceForSettlement: webhooks carry no KNET ids; the sweep asks Checkout.com for
// those of every captured KNET payment, once, and the payment is then found by any of them and by
// the merchant's reference.
func TestKNETIdsLearnedOnceForSettlement(t *testing.T) {
	e := newSweepEnv(t, nil)
	id := e.capturedPayment(2500)
	if p := e.payment(id); p.KNET != nil {
		t.Fatalf("KNET ids before the sweep asked: %+v", p.KNET)
	}
	rep := e.sweep(false)
	if rep.Outcomes[reconcile.CheckKNETIDs] != 1 {
		t.Fatalf("outcomes %v", rep.Outcomes)
	}
	api, err := e.sim.Payment(id)
	if err != nil {
		t.Fatal(err)
	}
	k := e.payment(id).KNET
	if k == nil || k.PaymentID == "" || k.PaymentID != api.Source.KNETPaymentID || k.TransactionID != api.Source.KNETTransactionID ||
		k.BankReference != api.Source.BankReference || k.PostDate != api.Source.PostDate {
		t.Fatalf("KNET ids %+v, API source %+v", k, api.Source)
	}
	if rep := e.sweep(false); rep.Outcomes[reconcile.CheckKNETIDs] != 0 {
		t.Fatalf("asked twice: %v", rep.Outcomes)
	}
	ctx := context.Background()
	for _, key := range []string{id, k.PaymentID, k.TransactionID, k.BankReference} {
		got, err := e.ledger.FindPayments(ctx, key, 10)
		if err != nil || len(got) != 1 || got[0] != id {
			t.Fatalf("find by %q: %v %v", key, got, err)
		}
	}
	if got, err := e.ledger.FindPayments(ctx, "ORD-1", 10); err != nil || len(got) != 1 {
		t.Fatalf("find by reference: %v %v", got, err)
	}
	if got, err := e.ledger.FindPayments(ctx, "nothing-like-it", 10); err != nil || len(got) != 0 {
		t.Fatalf("find by an unknown key: %v %v", got, err)
	}
}

// TestReconcileWindow: `reconciler reconcile` checks the payments of a window both ways: a dry
// run lists the differences and writes nothing; --apply records them and leaves the sweep's and
// the verification's schedules alone; a payment outside the window is not asked about.
func TestReconcileWindow(t *testing.T) {
	e := newSweepEnv(t, nil)
	outside := e.capturedPayment(1000)
	e.advance(48 * time.Hour)
	from := e.clock.Now()
	id := e.capturedPayment(2000)
	e.fakeWebhook(id, payment.EventRefunded, "act_ghost_r", 2000)
	before := e.payment(id)
	ctx := context.Background()
	dry, err := e.sweeper.Reconcile(ctx, from, from.Add(24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Decisions) != 1 || dry.Decisions[0].PaymentID != id || !dry.DryRun {
		t.Fatalf("dry run decisions %+v", dry.Decisions)
	}
	if got := dry.Decisions[0].Discrepancies; len(got) != 2 {
		t.Fatalf("dry run differences %v, want status and amount", got)
	}
	if p := e.payment(id); len(p.Discrepancies) != 0 || len(p.Checks) != 0 {
		t.Fatalf("the dry run wrote: %v, %d checks", kinds(p), len(p.Checks))
	}
	rep, err := e.sweeper.Reconcile(ctx, from, from.Add(24*time.Hour), true)
	if err != nil || rep.Outcomes[reconcile.CheckReconciled] != 1 {
		t.Fatalf("apply: %+v %v", rep.Outcomes, err)
	}
	after := e.payment(id)
	if k := kinds(after); k[payment.KindStatusMismatch] != 1 || k[payment.KindAmountMismatch] != 1 {
		t.Fatalf("discrepancies %v", k)
	}
	// (Applying the API's facts may restate the latest event's time to the API's precision.)
	if d := verifyAt(after).Sub(verifyAt(before)); d < 0 || d > time.Second || !after.NextCheckAt.Equal(before.NextCheckAt) || len(after.Checks) != 1 {
		t.Fatalf("schedules moved: verify %s -> %s, next %s -> %s, %d checks", verifyAt(before), verifyAt(after),
			before.NextCheckAt, after.NextCheckAt, len(after.Checks))
	}
	if p := e.payment(outside); len(p.Checks) != 0 {
		t.Fatalf("a payment outside the window was checked: %+v", p.Checks)
	}
}

// TestEveryMoneyKindAlerted: every kind that means money is wrong or unposted reaches the alert
// webhook (webhook_missing once it has been open a day).
func TestEveryMoneyKindAlerted(t *testing.T) {
	e := newSweepEnv(t, nil)
	e.alerter.Now = e.clock.Now
	id := e.capturedPayment(1000)
	ctx := context.Background()
	if err := e.ledger.Update(ctx, func(tx *store.Tx) error {
		for _, k := range payment.MoneyKinds {
			if _, err := tx.AddDiscrepancy(ctx, id, k, "test", store.OriginAPI, map[string]any{"kind": string(k)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(25 * time.Hour)
	if _, err := e.alerter.Deliver(ctx); err != nil {
		t.Fatal(err)
	}
	announced := map[string]bool{}
	for _, a := range e.alerts {
		announced[a.Kind] = true
	}
	for _, k := range payment.MoneyKinds {
		if !announced[string(k)] {
			t.Errorf("%s not announced", k)
		}
	}
	if len(payment.MoneyKinds) < 8 {
		t.Fatalf("money kinds %v", payment.MoneyKinds)
	}
}
