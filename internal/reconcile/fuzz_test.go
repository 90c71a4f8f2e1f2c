package reconcile

import (
	"testing"
	"time"

	"knetrecon/internal/events"
	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// FuzzDecode runs any body through the reconciler's decoder: it never panics, and whatever it
// accepts is a valid ledger input within every bound (no amount past 9 digits, no unbounded text,
// no control characters in ids and types; the reference is free text and keeps them), so nothing
// it lets through can break a report or a query.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"payment_captured","created_on":"2026-03-01T10:00:00Z","data":{"id":"pay_1","action_id":"act_1","amount":1000,"currency":"KWD"}}`))
	f.Add([]byte(`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","action_id":"act_1","amount":"1000","currency":"KWD"}}`))
	f.Add([]byte(`{"id":"evt_1","type":"payment_refunded","data":{"id":"pay_1","action_id":"act_1","amount":9223372036854775807,"currency":"KWD"}}`))
	f.Add([]byte(`{"id":"evt_1","type":"x","data":{"reference":"a\u0000b"}}`))
	f.Add([]byte(`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","action_id":"act_1","amount":1000,"currency":"KWD","reference":"ORD\t1\n"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := Decode(body, events.Delivery{Seq: 1, ReceivedAt: time.Unix(0, 0)})
		if err != nil {
			return
		}
		if verr := in.Validate(); verr != nil {
			t.Fatalf("Decode accepted what the ledger refuses: %v", verr)
		}
		if in.Amount < 0 || in.Amount > payment.MaxMinor {
			t.Fatalf("amount %d out of bounds", in.Amount)
		}
		if len(in.Reference) > store.MaxTextLen || len(in.EventID) > store.MaxIDLen {
			t.Fatalf("unbounded text: %d %d", len(in.Reference), len(in.EventID))
		}
	})
}
