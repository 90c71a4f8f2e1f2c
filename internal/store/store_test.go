package store_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/jmoiron/sqlx"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// ev builds a webhook input for payment pid. Money types take an action id.
func ev(id, typ, pid, action string, amount int64, at time.Duration) store.Input {
	return store.Input{
		EventID: id, Type: typ, Origin: store.OriginWebhook, PaymentID: pid, ActionID: action,
		Amount: amount, Currency: "KWD", Reference: "ORD-1", Method: "knet",
		OccurredAt: t0.Add(at), ReceivedAt: t0.Add(at + time.Second),
		Body: []byte(fmt.Sprintf(`{"id":%q,"type":%q,"data":{"id":%q,"action_id":%q,"amount":%d}}`, id, typ, pid, action, amount)),
	}
}

func mustApply(t *testing.T, l *store.Ledger, ins ...store.Input) []store.Result {
	t.Helper()
	var out []store.Result
	for _, in := range ins {
		r, err := l.Apply(context.Background(), in)
		if err != nil {
			t.Fatalf("apply %s: %v", in.EventID, err)
		}
		out = append(out, r)
	}
	return out
}

func mustPayment(t *testing.T, l *store.Ledger, id string) *store.PaymentDetail {
	t.Helper()
	p, err := l.Payment(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func kinds(p *store.PaymentDetail) []string {
	var ks []string
	for _, d := range p.Discrepancies {
		ks = append(ks, string(d.Kind))
	}
	sort.Strings(ks)
	return ks
}

func TestMigrateTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := storetest.MustOpenLedgerAt(t, path)
	v1, err := l.SchemaVersion(context.Background())
	if err != nil || v1 < 1 {
		t.Fatalf("schema version %d, %v", v1, err)
	}
	if err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v2, err := l.SchemaVersion(context.Background()); err != nil || v2 != v1 {
		t.Fatalf("schema version %d after migrating again, was %d, %v", v2, v1, err)
	}
}

func TestOpenRefusesMemory(t *testing.T) {
	if _, err := store.Open(context.Background(), ":memory:"); err == nil {
		t.Fatal("want an error for :memory:")
	}
}

func TestKNETHappyPath(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	res := mustApply(t, l,
		ev("evt_1", payment.EventPending, "pay_1", "", 1000, 0),
		ev("evt_2", payment.EventCaptured, "pay_1", "act_c", 1000, time.Minute),
	)
	if res[1].Outcome != store.OutcomeApplied || res[1].From != payment.StatusPending || res[1].To != payment.StatusCaptured {
		t.Fatalf("capture result %+v", res[1])
	}
	p := mustPayment(t, l, "pay_1")
	if p.Status != payment.StatusCaptured || p.Captured != 1000 || p.Refunded != 0 || p.Amount != 1000 || !p.Final {
		t.Fatalf("payment %+v", p.Payment)
	}
	if len(p.Postings) != 1 || len(p.Postings[0].Lines) != 2 || len(p.Events) != 2 || len(p.Discrepancies) != 0 {
		t.Fatalf("postings %+v events %d discrepancies %v", p.Postings, len(p.Events), kinds(p))
	}
	if p.Method != "knet" || p.Reference != "ORD-1" || p.Currency != "KWD" || p.RequestedAt == nil || !p.RequestedAt.Equal(t0) {
		t.Fatalf("descriptive fields %+v", p.Payment)
	}
}

func TestDuplicateAndConflict(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	in := ev("evt_1", payment.EventCaptured, "pay_1", "act_c", 1000, 0)
	mustApply(t, l, in)
	r := mustApply(t, l, in)[0]
	if r.Outcome != store.OutcomeDuplicate {
		t.Fatalf("same body: %s", r.Outcome)
	}
	changed := in
	changed.Body = []byte(`{"id":"evt_1","tampered":true}`)
	changed.Amount = 5000
	r = mustApply(t, l, changed)[0]
	if r.Outcome != store.OutcomeConflict || len(r.Discrepancies) != 1 || r.Discrepancies[0] != payment.KindConflictingDuplicate {
		t.Fatalf("different body: %+v", r)
	}
	p := mustPayment(t, l, "pay_1")
	if p.Captured != 1000 || len(p.Events) != 1 || p.Events[0].Duplicates != 1 {
		t.Fatalf("after conflict: captured %d events %+v", p.Captured, p.Events)
	}
	if got := kinds(p); !reflect.DeepEqual(got, []string{"conflicting_duplicate"}) {
		t.Fatalf("discrepancies %v", got)
	}
}

func TestSameActionTwoEventIDsPostsOnce(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	web := ev("evt_1", payment.EventCaptured, "pay_1", "act_c", 1000, 0)
	api := ev("api:act_c", payment.EventCaptured, "pay_1", "act_c", 1000, 0)
	api.Origin = store.OriginAPI
	again := ev("evt_2", payment.EventCaptured, "pay_1", "act_c", 1000, time.Second)
	res := mustApply(t, l, web, api, again)
	if res[1].Outcome != store.OutcomeAlreadyPosted || res[2].Outcome != store.OutcomeAlreadyPosted {
		t.Fatalf("outcomes %s %s", res[1].Outcome, res[2].Outcome)
	}
	p := mustPayment(t, l, "pay_1")
	if p.Captured != 1000 || len(p.Postings) != 1 || len(p.Events) != 3 || len(p.Discrepancies) != 0 {
		t.Fatalf("captured %d postings %d events %d discrepancies %v", p.Captured, len(p.Postings), len(p.Events), kinds(p))
	}
	// The same action id with another amount is a discrepancy, still posted once.
	odd := ev("evt_3", payment.EventCaptured, "pay_1", "act_c", 900, time.Second)
	if r := mustApply(t, l, odd)[0]; r.Outcome != store.OutcomeAlreadyPosted || len(r.Discrepancies) != 1 {
		t.Fatalf("mismatch %+v", r)
	}
	if p := mustPayment(t, l, "pay_1"); p.Captured != 1000 || !reflect.DeepEqual(kinds(p), []string{"amount_mismatch"}) {
		t.Fatalf("captured %d discrepancies %v", p.Captured, kinds(p))
	}
}

func TestPartialRefunds(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	mustApply(t, l,
		ev("evt_p", payment.EventPending, "pay_1", "", 10000, 0),
		ev("evt_c", payment.EventCaptured, "pay_1", "act_c", 10000, time.Minute),
		ev("evt_r1", payment.EventRefunded, "pay_1", "act_r1", 2500, 2*time.Minute),
	)
	if p := mustPayment(t, l, "pay_1"); p.Status != payment.StatusPartiallyRefunded || p.Refunded != 2500 {
		t.Fatalf("after one refund: %s %d", p.Status, p.Refunded)
	}
	mustApply(t, l,
		ev("evt_r2", payment.EventRefunded, "pay_1", "act_r2", 2500, 3*time.Minute),
		ev("evt_r3", payment.EventRefunded, "pay_1", "act_r3", 4000, 4*time.Minute),
	)
	if p := mustPayment(t, l, "pay_1"); p.Status != payment.StatusPartiallyRefunded || p.Refunded != 9000 {
		t.Fatalf("after three refunds: %s %d", p.Status, p.Refunded)
	}
	mustApply(t, l, ev("evt_r4", payment.EventRefunded, "pay_1", "act_r4", 1000, 5*time.Minute))
	p := mustPayment(t, l, "pay_1")
	if p.Status != payment.StatusRefunded || p.Refunded != 10000 || p.Captured != 10000 || len(p.Postings) != 5 {
		t.Fatalf("fully refunded: %s %d/%d postings %d", p.Status, p.Refunded, p.Captured, len(p.Postings))
	}
}

func TestRefundBeforeCapture(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	r := mustApply(t, l, ev("evt_r", payment.EventRefunded, "pay_1", "act_r", 300, time.Minute))[0]
	if r.Outcome != store.OutcomeHeld {
		t.Fatalf("refund first: %s", r.Outcome)
	}
	p := mustPayment(t, l, "pay_1")
	if p.Refunded != 0 || p.Held != 300 || p.Status != payment.StatusPending {
		t.Fatalf("held: %+v", p.Payment)
	}
	mustApply(t, l, ev("evt_c", payment.EventCaptured, "pay_1", "act_c", 1000, 0))
	p = mustPayment(t, l, "pay_1")
	if p.Refunded != 300 || p.Held != 0 || p.Status != payment.StatusPartiallyRefunded || len(p.Discrepancies) != 0 {
		t.Fatalf("after capture: %+v %v", p.Payment, kinds(p))
	}
}

func TestOverRefund(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	mustApply(t, l,
		ev("evt_p", payment.EventPending, "pay_1", "", 1000, 0),
		ev("evt_c", payment.EventCaptured, "pay_1", "act_c", 1000, time.Minute),
		ev("evt_r1", payment.EventRefunded, "pay_1", "act_r1", 700, 2*time.Minute),
		ev("evt_r2", payment.EventRefunded, "pay_1", "act_r2", 700, 3*time.Minute),
	)
	p := mustPayment(t, l, "pay_1")
	if p.Refunded != 700 || p.Held != 700 || p.Status != payment.StatusPartiallyRefunded {
		t.Fatalf("over-refund: %+v", p.Payment)
	}
	if !reflect.DeepEqual(kinds(p), []string{"over_refund"}) {
		t.Fatalf("discrepancies %v", kinds(p))
	}
}

func TestCapturedAfterExpiry(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	mustApply(t, l,
		ev("evt_p", payment.EventPending, "pay_1", "", 1000, 0),
		ev("evt_x", payment.EventExpired, "pay_1", "act_x", 1000, 7*time.Minute),
	)
	if p := mustPayment(t, l, "pay_1"); p.Status != payment.StatusExpired || !p.Final {
		t.Fatalf("expired: %+v", p.Payment)
	}
	r := mustApply(t, l, ev("evt_c", payment.EventCaptured, "pay_1", "act_c", 1000, 7*time.Minute+time.Second))[0]
	if r.From != payment.StatusExpired || r.To != payment.StatusCaptured {
		t.Fatalf("result %+v", r)
	}
	p := mustPayment(t, l, "pay_1")
	if p.Status != payment.StatusCaptured || p.Captured != 1000 || !reflect.DeepEqual(kinds(p), []string{"captured_after_expiry"}) {
		t.Fatalf("after late capture: %+v %v", p.Payment, kinds(p))
	}
}

func TestLatePendingIsHistory(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	res := mustApply(t, l,
		ev("evt_c", payment.EventCaptured, "pay_1", "act_c", 1000, time.Minute),
		ev("evt_a", payment.EventApproved, "pay_1", "", 1000, 30*time.Second),
		ev("evt_p", payment.EventPending, "pay_1", "", 1000, 0),
	)
	if res[1].Outcome != store.OutcomeNoChange || res[2].Outcome != store.OutcomeNoChange {
		t.Fatalf("outcomes %s %s", res[1].Outcome, res[2].Outcome)
	}
	p := mustPayment(t, l, "pay_1")
	if p.Status != payment.StatusCaptured || len(p.Events) != 3 || len(p.Discrepancies) != 0 {
		t.Fatalf("%+v %v", p.Payment, kinds(p))
	}
}

func TestUnknownsAreKept(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	odd := ev("evt_n", "payment_teleported", "pay_1", "", 1000, 0)
	snap := ev("api:pay_1:1", payment.EventSnapshot, "pay_1", "", 1000, time.Second)
	snap.Origin, snap.Status = store.OriginAPI, "Pending Review"
	nonPayment := ev("evt_d", "dispute_received", "", "", 0, 0)
	res := mustApply(t, l, odd, snap, nonPayment)
	if res[0].Outcome != store.OutcomeRecorded || res[2].Outcome != store.OutcomeIgnored {
		t.Fatalf("outcomes %+v", res)
	}
	p := mustPayment(t, l, "pay_1")
	if p.ProviderStatus != "Pending Review" || p.Status != payment.StatusPending || !reflect.DeepEqual(kinds(p), []string{"unknown_status"}) {
		t.Fatalf("%+v %v", p.Payment, kinds(p))
	}
}

func TestCurrencyMismatchRejected(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	c := ev("evt_c", payment.EventCaptured, "pay_1", "act_c", 1000, 0)
	mustApply(t, l, c)
	r := ev("evt_r", payment.EventRefunded, "pay_1", "act_r", 100, time.Minute)
	r.Currency = "USD"
	if res := mustApply(t, l, r)[0]; res.Outcome != store.OutcomeRejected {
		t.Fatalf("outcome %s", res.Outcome)
	}
	if p := mustPayment(t, l, "pay_1"); p.Refunded != 0 || !reflect.DeepEqual(kinds(p), []string{"currency_mismatch"}) {
		t.Fatalf("%+v %v", p.Payment, kinds(p))
	}
}

func TestInvalidInput(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	tests := []store.Input{
		ev("evt_1", payment.EventCaptured, "pay_1", "", 1000, 0),
		ev("evt_2", payment.EventRefunded, "pay_1", "act_r", 0, 0),
		ev("", payment.EventPending, "pay_1", "", 1000, 0),
		func() store.Input {
			i := ev("evt_3", payment.EventPending, "pay_1", "", 1, 0)
			i.Currency = "kd"
			return i
		}(),
		func() store.Input { i := ev("evt_4", payment.EventPending, "pay_1", "", 1, 0); i.Origin = ""; return i }(),
		// Bounds: no amount past Checkout.com's 9 digits (so no SUM can overflow), no unbounded text.
		ev("evt_5", payment.EventCaptured, "pay_1", "act_5", 9223372036854775807, 0),
		ev("evt_6", payment.EventCaptured, "pay_1", "act_6", payment.MaxMinor+1, 0),
		func() store.Input {
			i := ev("evt_7", payment.EventCaptured, "pay_1", "act_7", 1000, 0)
			i.Reference = strings.Repeat("r", store.MaxTextLen+1)
			return i
		}(),
		ev("evt_8", payment.EventCaptured, "pay_1", "act_8\r\n", 1000, 0),
		ev("evt_9", payment.EventCaptured, "pay_"+strings.Repeat("1", store.MaxIDLen), "act_9", 1000, 0),
	}
	for _, tt := range tests {
		if _, err := l.Apply(context.Background(), tt); !errors.Is(err, store.ErrInvalidInput) {
			t.Errorf("%s: error %v, want ErrInvalidInput", tt.EventID, err)
		}
	}
}

func TestBatchBadNeighbour(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	ins := []store.Input{
		ev("evt_1", payment.EventPending, "pay_1", "", 1000, 0),
		ev("evt_bad", payment.EventCaptured, "pay_1", "", 1000, time.Second), // no action id
		ev("evt_2", payment.EventCaptured, "pay_1", "act_c", 1000, time.Minute),
	}
	res, err := l.ApplyBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[2].Err != nil || !errors.Is(res[1].Err, store.ErrInvalidInput) {
		t.Fatalf("results %+v", res)
	}
	p := mustPayment(t, l, "pay_1")
	if p.Status != payment.StatusCaptured || len(p.Events) != 2 {
		t.Fatalf("%+v events %d", p.Payment, len(p.Events))
	}
}

func TestDuePayments(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	// Due at once when first seen (a first check after zero).
	if err := l.SetSchedule(context.Background(), store.Schedule{}, "test"); err != nil {
		t.Fatal(err)
	}
	var ins []store.Input
	for i := 0; i < 25; i++ {
		pid := fmt.Sprintf("pay_%02d", i)
		in := ev("evt_p"+pid, payment.EventPending, pid, "", 1000, time.Duration(i)*time.Minute)
		ins = append(ins, in)
		if i%5 == 0 { // captured: final, never due
			ins = append(ins, ev("evt_c"+pid, payment.EventCaptured, pid, "act_"+pid, 1000, time.Duration(i)*time.Minute))
		}
	}
	if _, err := l.ApplyBatch(context.Background(), ins); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	due := t0.Add(15 * time.Minute) // received at t0+i min+1s: pay_00..pay_14 are due
	var got []string
	var cur store.Cursor
	for {
		page, next, err := l.DuePayments(ctx, store.DueQuery{Due: due, After: cur, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			got = append(got, p.ID)
		}
		if next == (store.Cursor{}) {
			break
		}
		cur = next
	}
	want := []string{"pay_01", "pay_02", "pay_03", "pay_04", "pay_06", "pay_07", "pay_08", "pay_09", "pay_11", "pay_12", "pay_13", "pay_14"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("due %v, want %v", got, want)
	}
	// A check pushes a payment out of the due list until its next_check_at.
	err := l.Update(ctx, func(tx *store.Tx) error {
		if err := tx.RecordCheck(ctx, store.Check{PaymentID: "pay_01", CheckedAt: due, ProviderStatus: "Pending",
			Outcome: "match", NextCheckAt: due.Add(time.Hour)}); err != nil {
			return err
		}
		_, err := tx.AddDiscrepancy(ctx, "pay_02", payment.KindWebhookMissing, "act_x", store.OriginAPI, map[string]any{"action_id": "act_x"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	page, _, err := l.DuePayments(ctx, store.DueQuery{Due: due, Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != "pay_02" {
		t.Fatalf("after check: %+v %v", page, err)
	}
	if p := mustPayment(t, l, "pay_02"); !reflect.DeepEqual(kinds(p), []string{"webhook_missing"}) {
		t.Fatalf("%v", kinds(p))
	}
	plan := store.ExplainDue(t, l, false)
	if !strings.Contains(plan, "payments_due") {
		t.Fatalf("due query not served by the index: %s", plan)
	}
}

func TestOverCaptureIsAmountMismatch(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	mustApply(t, l,
		ev("evt_c1", payment.EventCaptured, "pay_1", "act_c1", 800, time.Minute),
		ev("evt_c2", payment.EventCaptured, "pay_1", "act_c2", 800, 2*time.Minute),
		ev("evt_p", payment.EventPending, "pay_1", "", 1000, 0),
	)
	p := mustPayment(t, l, "pay_1")
	if p.Captured != 1600 || p.Status != payment.StatusCaptured || !reflect.DeepEqual(kinds(p), []string{"amount_mismatch"}) {
		t.Fatalf("%+v %v", p.Payment, kinds(p))
	}
}

// TestBatchFailureAfterWrites makes one event fail after it has already written its payment,
// posting and journal lines (a trigger refuses its event row): the optimistic run is rolled back
// and redone with savepoints, so its half-written rows vanish and its neighbours are kept.
func TestBatchFailureAfterWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := storetest.MustOpenLedgerAt(t, path)
	db, err := sqlx.Open("sqlite3", store.DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse_bad BEFORE INSERT ON events WHEN NEW.id = 'evt_bad'
		BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`); err != nil {
		t.Fatal(err)
	}
	ins := []store.Input{
		ev("evt_1", payment.EventPending, "pay_1", "", 1000, 0),
		ev("evt_bad", payment.EventCaptured, "pay_2", "act_bad", 500, time.Second),
		ev("evt_2", payment.EventCaptured, "pay_1", "act_c", 1000, time.Minute),
	}
	res, err := l.ApplyBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[2].Err != nil || res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "refused by test trigger") {
		t.Fatalf("results %+v", res)
	}
	if p := mustPayment(t, l, "pay_1"); p.Status != payment.StatusCaptured || p.Captured != 1000 || len(p.Events) != 2 {
		t.Fatalf("pay_1 %+v events %d", p.Payment, len(p.Events))
	}
	var n int
	if err := db.Get(&n, `SELECT (SELECT COUNT(*) FROM payments WHERE id = 'pay_2') + (SELECT COUNT(*) FROM postings WHERE action_id = 'act_bad')
		+ (SELECT COUNT(*) FROM journal WHERE action_id = 'act_bad')`); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows of the refused event survived", n)
	}
}

// TestSameEventTwiceInOneBatch: the second copy is a duplicate and is counted on the first's row,
// even though that row is only written at the end of the batch.
func TestSameEventTwiceInOneBatch(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	in := ev("evt_1", payment.EventCaptured, "pay_1", "act_1", 1000, 0)
	res, err := l.ApplyBatch(context.Background(), []store.Input{in, in, ev("evt_2", payment.EventPending, "pay_2", "", 5, 0), in})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Outcome != store.OutcomeApplied || res[1].Outcome != store.OutcomeDuplicate || res[3].Outcome != store.OutcomeDuplicate {
		t.Fatalf("%+v", res)
	}
	p := mustPayment(t, l, "pay_1")
	if len(p.Events) != 1 || p.Events[0].Duplicates != 2 || p.Captured != 1000 {
		t.Fatalf("%+v events %+v", p.Payment, p.Events)
	}
}

// TestHeldRefundReleasedInOneBatch: a refund that arrives before its capture is held; when the
// capture comes later in the same batch, the held refund (still among the rows gathered for the
// end of the batch) is found and posted.
func TestHeldRefundReleasedInOneBatch(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	ins := []store.Input{
		ev("evt_r", payment.EventRefunded, "pay_1", "act_r", 400, time.Minute),
		ev("evt_other", payment.EventPending, "pay_2", "", 5, 0),
		ev("evt_c", payment.EventCaptured, "pay_1", "act_c", 1000, 0),
	}
	res, err := l.ApplyBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Outcome != store.OutcomeHeld || res[2].Outcome != store.OutcomeApplied {
		t.Fatalf("%+v", res)
	}
	p := mustPayment(t, l, "pay_1")
	if p.Captured != 1000 || p.Refunded != 400 || p.Held != 0 || p.Status != payment.StatusPartiallyRefunded {
		t.Fatalf("%+v", p.Payment)
	}
}

// A final payment is due for verification VerifyAfter after its latest event, whichever way it
// was written (one event, or a batch's gathered rows); every later event starts the count again,
// and the sweep's check moves or ends it.
func TestVerifySchedule(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	ctx := context.Background()
	if err := l.SetSchedule(ctx, store.Schedule{FirstCheckAfter: 7 * time.Minute, VerifyAfter: 31 * time.Hour}, "test"); err != nil {
		t.Fatal(err)
	}
	verifyAt := func(id string) *time.Time { t.Helper(); return mustPayment(t, l, id).VerifyAt }
	due := func(at time.Time) []string {
		t.Helper()
		var ids []string
		var cur store.Cursor
		for {
			page, next, err := l.DuePayments(ctx, store.DueQuery{Due: at, Verify: true, After: cur, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				ids = append(ids, p.ID)
			}
			if next == (store.Cursor{}) {
				return ids
			}
			cur = next
		}
	}

	mustApply(t, l, ev("evt_p1", payment.EventPending, "pay_1", "", 1000, 0))
	if at := verifyAt("pay_1"); at != nil {
		t.Fatalf("open payment scheduled for verification at %s", at)
	}
	mustApply(t, l, ev("evt_c1", payment.EventCaptured, "pay_1", "act_c1", 1000, time.Minute))
	if _, err := l.ApplyBatch(ctx, []store.Input{
		ev("evt_p2", payment.EventPending, "pay_2", "", 2000, 0),
		ev("evt_x2", payment.EventExpired, "pay_2", "", 2000, 7*time.Minute),
		ev("evt_p3", payment.EventPending, "pay_3", "", 3000, 0),
	}); err != nil {
		t.Fatal(err)
	}
	want1, want2 := t0.Add(time.Minute+31*time.Hour), t0.Add(7*time.Minute+31*time.Hour)
	if at := verifyAt("pay_1"); at == nil || !at.Equal(want1) {
		t.Fatalf("pay_1 verify_at %v, want %s", at, want1)
	}
	if at := verifyAt("pay_2"); at == nil || !at.Equal(want2) {
		t.Fatalf("pay_2 verify_at %v, want %s", at, want2)
	}
	if got := due(want1.Add(-time.Nanosecond)); len(got) != 0 {
		t.Fatalf("due before its time: %v", got)
	}
	if got := due(want2); !reflect.DeepEqual(got, []string{"pay_1", "pay_2"}) {
		t.Fatalf("due %v", got)
	}

	// A refund two hours later starts the count again.
	mustApply(t, l, ev("evt_r1", payment.EventRefunded, "pay_1", "act_r1", 400, 2*time.Hour))
	if at, want := verifyAt("pay_1"), t0.Add(2*time.Hour+31*time.Hour); at == nil || !at.Equal(want) {
		t.Fatalf("after the refund verify_at %v, want %s", at, want)
	}
	// The sweep's check moves it, or ends it.
	check := func(id string, from, next time.Time) {
		t.Helper()
		err := l.Update(ctx, func(tx *store.Tx) error {
			return tx.RecordCheck(ctx, store.Check{PaymentID: id, CheckedAt: want2, Outcome: "verified", Verify: true,
				VerifiedFrom: from, NextCheckAt: next})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	next := t0.Add(8 * 24 * time.Hour)
	check("pay_1", t0.Add(2*time.Hour), next)
	check("pay_2", t0.Add(7*time.Minute), time.Time{})
	p1 := mustPayment(t, l, "pay_1")
	if p1.VerifyAt == nil || !p1.VerifyAt.Equal(next) || !p1.NextCheckAt.Equal(t0.Add(time.Second+7*time.Minute)) {
		t.Fatalf("pay_1 after its check: verify_at %v, next_check_at %s", p1.VerifyAt, p1.NextCheckAt)
	}
	if at := verifyAt("pay_2"); at != nil {
		t.Fatalf("pay_2 verify_at %s after its last verification", at)
	}
	// A check that read the payment before a later event was applied leaves that event's
	// restart of the count alone.
	mustApply(t, l, ev("evt_r2", payment.EventRefunded, "pay_1", "act_r2", 100, 3*time.Hour))
	check("pay_1", t0.Add(2*time.Hour), t0.Add(32*24*time.Hour))
	if at, want := verifyAt("pay_1"), t0.Add(3*time.Hour+31*time.Hour); at == nil || !at.Equal(want) {
		t.Fatalf("a stale check overwrote the restart: verify_at %v, want %s", at, want)
	}
	if plan := store.ExplainDue(t, l, true); !strings.Contains(plan, "payments_verify") {
		t.Fatalf("verification list not served by its index: %s", plan)
	}

	// Off: nothing is scheduled.
	if err := l.SetSchedule(ctx, store.Schedule{FirstCheckAfter: 7 * time.Minute}, "test"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, l, ev("evt_c3", payment.EventCaptured, "pay_3", "act_c3", 3000, time.Minute))
	if at := verifyAt("pay_3"); at != nil {
		t.Fatalf("verification off, yet pay_3 verify_at %s", at)
	}
}

// TestPanicInsideUpdateRollsBack: a panic in the middle of a write (after it has written rows)
// rolls the transaction back and frees the one writer connection: the next write succeeds at once
// and nothing of the panicking one is left.
func TestPanicInsideUpdateRollsBack(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		_ = l.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.Apply(ctx, ev("evt_p", "payment_captured", "pay_p", "act_p", 1000, 0)); err != nil {
				t.Fatal(err)
			}
			panic("a bug in the middle of a write")
		})
	}()
	done := make(chan error, 1)
	go func() {
		_, err := l.Apply(ctx, ev("evt_n", "payment_captured", "pay_n", "act_n", 2000, 0))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next write is still waiting for the writer connection")
	}
	if _, err := l.Payment(ctx, "pay_p"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the panicking write left its payment: %v", err)
	}
	if p := mustPayment(t, l, "pay_n"); p.Captured != 2000 {
		t.Fatalf("next write: %+v", p)
	}
}
