package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// An event dated far ahead of its receipt (2099, or the last day time.Time can write as JSON) is
// applied, its money counted, but timed by its receipt and flagged clock_skew: it never schedules
// a check or a verification years ahead, and every date the ledger then holds writes as JSON.
func TestEventDatedFarAheadIsTimedByItsReceipt(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	for _, tt := range []struct {
		name string
		give time.Time
	}{
		{"2099", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"9999", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid := "pay_" + tt.name
			in := ev("evt_c"+tt.name, payment.EventCaptured, pid, "act_"+tt.name, 2_000, 0)
			in.OccurredAt, in.RequestedAt = tt.give, tt.give
			res := mustApply(t, l, in)[0]
			if res.Outcome != store.OutcomeApplied {
				t.Fatalf("outcome %s", res.Outcome)
			}
			p := mustPayment(t, l, pid)
			received := in.ReceivedAt
			if p.Captured != 2_000 || p.LastEventAt == nil || !p.LastEventAt.Equal(received) || !p.RequestedAt.Equal(received) {
				t.Fatalf("payment %+v: want its times at its receipt %s", p.Payment, received)
			}
			if p.VerifyAt == nil || !p.VerifyAt.Equal(received.Add(store.DefaultSchedule.VerifyAfter)) {
				t.Fatalf("verify_at %v, want a day and 7 h after its receipt", p.VerifyAt)
			}
			if len(p.Discrepancies) != 2 || p.Discrepancies[0].Kind != payment.KindClockSkew {
				t.Fatalf("discrepancies %+v, want clock_skew for its date and its requested date", p.Discrepancies)
			}
			if _, err := json.Marshal(p); err != nil {
				t.Fatalf("the payment does not write as JSON: %v", err)
			}
		})
	}
	// Within the skew: kept as sent.
	in := ev("evt_near", payment.EventCaptured, "pay_near", "act_near", 1_000, 0)
	in.OccurredAt = in.ReceivedAt.Add(time.Hour)
	mustApply(t, l, in)
	if p := mustPayment(t, l, "pay_near"); !p.LastEventAt.Equal(in.OccurredAt) || len(p.Discrepancies) != 0 {
		t.Fatalf("an hour ahead: %+v %+v", p.LastEventAt, p.Discrepancies)
	}
}
