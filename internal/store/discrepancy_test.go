package store_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// update runs fn in one transaction on the clock reading at, as the consumer does for a message.
func update(t *testing.T, l *store.Ledger, at time.Time, fn func(context.Context, *store.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := l.Update(ctx, func(tx *store.Tx) error {
		tx.SetNow(at)
		return fn(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
}

// A difference resolved while still true is reopened by the next finding: the row is open again
// with the new details, and its history keeps the resolution it cleared (when, who, the note),
// every time on the transaction's clock.
func TestDiscrepancyReopenedKeepsItsResolution(t *testing.T) {
	ctx := context.Background()
	l := storetest.MustOpenLedger(t)
	if _, err := l.Apply(ctx, ev("evt_p", payment.EventPending, "pay_1", "", 1000, 0)); err != nil {
		t.Fatal(err)
	}
	key := store.DiscrepancyKey{PaymentID: "pay_1", Kind: payment.KindStatusMismatch, Subject: store.SubjectProvider}
	find := func(n int) map[string]any {
		return map[string]any{"provider_status": "Authorized", "finding": n}
	}
	opened := func(tx *store.Tx, n int) bool {
		added, err := tx.AddOrReopenDiscrepancy(ctx, key.PaymentID, key.Kind, key.Subject, store.OriginAPI, find(n))
		if err != nil {
			t.Fatal(err)
		}
		return added
	}
	resolve := func(tx *store.Tx, who, note string) {
		id, err := tx.DiscrepancyID(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.ResolveDiscrepancy(ctx, id, who, "by hand ("+who+"): "+note); err != nil {
			t.Fatal(err)
		}
	}
	update(t, l, t0.Add(time.Hour), func(ctx context.Context, tx *store.Tx) error {
		if !opened(tx, 1) || opened(tx, 1) {
			t.Fatal("first finding: want opened once")
		}
		return nil
	})
	update(t, l, t0.Add(2*time.Hour), func(ctx context.Context, tx *store.Tx) error {
		resolve(tx, "alice", "Checkout.com is wrong")
		return nil
	})
	update(t, l, t0.Add(3*time.Hour), func(ctx context.Context, tx *store.Tx) error {
		if !opened(tx, 2) {
			t.Fatal("finding after a resolution: want reopened")
		}
		if opened(tx, 3) {
			t.Fatal("finding while open: want nothing new")
		}
		return nil
	})

	ds, err := l.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: "pay_1", All: true})
	if err != nil || len(ds) != 1 {
		t.Fatalf("discrepancies %+v, %v; want one row", ds, err)
	}
	d := ds[0]
	var details map[string]any
	_ = json.Unmarshal(d.Details, &details)
	if d.ResolvedAt != nil || d.Resolution != "" || d.ResolvedBy != "" || d.Reopened != 1 || details["finding"] != 2.0 {
		t.Fatalf("after the reopening: %+v", d)
	}
	want := []store.DiscrepancyEvent{
		{At: t0.Add(time.Hour), Event: store.DiscrepancyOpened},
		{At: t0.Add(2 * time.Hour), Event: store.DiscrepancyResolved, By: "alice", Note: "by hand (alice): Checkout.com is wrong"},
		{At: t0.Add(3 * time.Hour), Event: store.DiscrepancyReopened, Note: "still true at a later check (api)"},
	}
	if !reflect.DeepEqual(d.History, want) {
		t.Fatalf("history\n got %+v\nwant %+v", d.History, want)
	}
	if open, err := l.Discrepancies(ctx, store.DiscrepancyFilter{Kind: payment.KindStatusMismatch}); err != nil || len(open) != 1 {
		t.Fatalf("open status mismatches %+v, %v; want the reopened one", open, err)
	}

	// Resolved again: both resolutions are in the history, the current one last.
	update(t, l, t0.Add(4*time.Hour), func(ctx context.Context, tx *store.Tx) error {
		resolve(tx, "bob", "refund done by hand")
		return nil
	})
	ds, err = l.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: "pay_1", All: true})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, store.DiscrepancyEvent{At: t0.Add(4 * time.Hour), Event: store.DiscrepancyResolved, By: "bob", Note: "by hand (bob): refund done by hand"})
	if d := ds[0]; d.ResolvedBy != "bob" || !reflect.DeepEqual(d.History, want) {
		t.Fatalf("resolved again: by %q history %+v", d.ResolvedBy, d.History)
	}

	// A discrepancy about one event is found once: AddDiscrepancy never reopens it.
	update(t, l, t0.Add(5*time.Hour), func(ctx context.Context, tx *store.Tx) error {
		if _, err := tx.AddDiscrepancy(ctx, "pay_1", payment.KindOverRefund, "act_1", store.OriginWebhook, map[string]any{}); err != nil {
			return err
		}
		_, err := tx.ResolveOpenSubject(ctx, "pay_1", payment.KindOverRefund, "act_1", "explained")
		return err
	})
	update(t, l, t0.Add(6*time.Hour), func(ctx context.Context, tx *store.Tx) error {
		added, err := tx.AddDiscrepancy(ctx, "pay_1", payment.KindOverRefund, "act_1", store.OriginWebhook, map[string]any{})
		if added {
			t.Error("AddDiscrepancy reopened a resolved over_refund")
		}
		return err
	})
	if open, err := l.Discrepancies(ctx, store.DiscrepancyFilter{Kind: payment.KindOverRefund}); err != nil || len(open) != 0 {
		t.Fatalf("open over_refund %+v, %v; want none", open, err)
	}
}

// A stuck mark counts while its payment is open, by one rule in every list and count; once the
// payment is final the mark waits for the sweep to resolve it (OpenOnFinal) and counts nowhere.
func TestStuckCountsOnlyWhileThePaymentIsOpen(t *testing.T) {
	ctx := context.Background()
	l := storetest.MustOpenLedger(t)
	for _, in := range []store.Input{
		ev("evt_open", payment.EventPending, "pay_open", "", 1000, 0),
		ev("evt_final", payment.EventPending, "pay_final", "", 2000, 0),
	} {
		if _, err := l.Apply(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	update(t, l, t0.Add(time.Hour), func(ctx context.Context, tx *store.Tx) error {
		for _, id := range []string{"pay_open", "pay_final"} {
			if _, err := tx.AddOrReopenDiscrepancy(ctx, id, payment.KindStuck, "", store.OriginAPI, map[string]any{"reason": "open for 1h"}); err != nil {
				return err
			}
		}
		return nil
	})
	if _, err := l.Apply(ctx, ev("evt_exp", payment.EventExpired, "pay_final", "", 0, 2*time.Hour)); err != nil {
		t.Fatal(err)
	}

	_, counts, err := l.OpenCounts(ctx)
	if err != nil || counts[payment.KindStuck] != 1 {
		t.Fatalf("open stuck count %d, %v; want 1", counts[payment.KindStuck], err)
	}
	listed, err := l.Discrepancies(ctx, store.DiscrepancyFilter{Kind: payment.KindStuck})
	if err != nil || len(listed) != 1 || listed[0].PaymentID != "pay_open" {
		t.Fatalf("open stuck marks %+v, %v; want pay_open's", listed, err)
	}
	pays, err := l.ListPayments(ctx, store.PaymentFilter{Kind: payment.KindStuck})
	if err != nil || len(pays) != 1 || pays[0].ID != "pay_open" {
		t.Fatalf("payments with an open stuck mark %+v, %v; want pay_open", pays, err)
	}
	left, err := l.OpenOnFinal(ctx, payment.KindStuck)
	if err != nil || !reflect.DeepEqual(left, []string{"pay_final"}) {
		t.Fatalf("stuck marks left on final payments %v, %v; want pay_final", left, err)
	}
	if all, err := l.Discrepancies(ctx, store.DiscrepancyFilter{Kind: payment.KindStuck, All: true}); err != nil || len(all) != 2 {
		t.Fatalf("all stuck marks %d, %v; want 2", len(all), err)
	}
	update(t, l, t0.Add(3*time.Hour), func(ctx context.Context, tx *store.Tx) error {
		for id, want := range map[string]bool{"pay_open": false, "pay_final": true, "pay_none": false} {
			if final, err := tx.PaymentFinal(ctx, id); err != nil || final != want {
				t.Errorf("PaymentFinal(%s) = %v, %v; want %v", id, final, err, want)
			}
		}
		return nil
	})
}
