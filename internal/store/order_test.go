package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// state is what must not depend on arrival order: status, amounts, postings.
type state struct {
	Status                     payment.Status
	Amount, Captured, Refunded int64
	Held                       int64
	Postings                   []string
}

func stateOf(t *testing.T, l *store.Ledger, pid string) state {
	t.Helper()
	p := mustPayment(t, l, pid)
	s := state{Status: p.Status, Amount: p.Amount, Captured: p.Captured, Refunded: p.Refunded, Held: p.Held}
	for _, po := range p.Postings {
		lines := fmt.Sprint(po.Lines)
		s.Postings = append(s.Postings, strings.TrimPrefix(po.ActionID, pid)+" "+po.Kind+" "+po.State+" "+fmt.Sprint(po.Amount)+" "+lines)
	}
	return s
}

// rename gives a scenario's inputs a payment of their own so many runs share one ledger.
func rename(ins []store.Input, pid string) []store.Input {
	out := make([]store.Input, len(ins))
	for i, in := range ins {
		in.EventID = pid + "/" + in.EventID
		in.PaymentID = pid
		if in.ActionID != "" {
			in.ActionID = pid + in.ActionID
		}
		in.Body = []byte(pid + string(in.Body))
		out[i] = in
	}
	return out
}

// pairEvents are the events of KNET payments, one of each kind the rules know.
var pairEvents = []store.Input{
	ev("evt_pending", payment.EventPending, "", "", 1000, 0),
	ev("evt_approved", payment.EventApproved, "", "", 1000, time.Second),
	ev("evt_captured", payment.EventCaptured, "", "_c", 1000, 2*time.Second),
	ev("evt_refunded", payment.EventRefunded, "", "_r", 400, 3*time.Second),
	ev("evt_expired", payment.EventExpired, "", "_x", 1000, 7*time.Minute),
	ev("evt_canceled", payment.EventCanceled, "", "", 1000, 4*time.Minute),
	ev("evt_declined", payment.EventDeclined, "", "", 1000, 5*time.Second),
	ev("evt_voided", payment.EventVoided, "", "_v", 1000, 6*time.Second),
	ev("evt_refund_pending", payment.EventRefundPending, "", "", 400, 3*time.Second),
	ev("evt_capture_declined", payment.EventCaptureDeclined, "", "", 1000, 3*time.Second),
	ev("evt_paid", payment.EventPaid, "", "", 1000, 3*time.Second),
	ev("evt_unknown", "payment_something_new", "", "", 1000, 3*time.Second),
}

// TestEveryOutOfOrderPair applies every pair of events in both orders, against the real ledger,
// and wants the same status, amounts and postings either way.
func TestEveryOutOfOrderPair(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	n := 0
	for i, a := range pairEvents {
		for j, b := range pairEvents {
			if i >= j {
				continue
			}
			n++
			ab, ba := fmt.Sprintf("pay_%d_ab", n), fmt.Sprintf("pay_%d_ba", n)
			mustApply(t, l, rename([]store.Input{a, b}, ab)...)
			mustApply(t, l, rename([]store.Input{b, a}, ba)...)
			if sa, sb := stateOf(t, l, ab), stateOf(t, l, ba); !reflect.DeepEqual(sa, sb) {
				t.Errorf("%s then %s: %+v\n%s then %s: %+v", a.Type, b.Type, sa, b.Type, a.Type, sb)
			}
		}
	}
}

// stories are whole payments; every permutation of each, with duplicates, must end the same.
var stories = map[string][]store.Input{
	"knet captured then refunded in parts": {
		ev("evt_p", payment.EventPending, "", "", 10000, 0),
		ev("evt_c", payment.EventCaptured, "", "_c", 10000, time.Minute),
		ev("evt_c_again", payment.EventCaptured, "", "_c", 10000, time.Minute), // same action, other event id
		ev("evt_rp", payment.EventRefundPending, "", "", 3000, 2*time.Minute),
		ev("evt_r1", payment.EventRefunded, "", "_r1", 3000, 3*time.Minute),
		ev("evt_r2", payment.EventRefunded, "", "_r2", 2000, 4*time.Minute),
		ev("evt_r3", payment.EventRefunded, "", "_r3", 5000, 5*time.Minute),
	},
	"seven minute race": {
		ev("evt_p", payment.EventPending, "", "", 2500, 0),
		ev("evt_x", payment.EventExpired, "", "_x", 2500, 7*time.Minute),
		ev("evt_c", payment.EventCaptured, "", "_c", 2500, 7*time.Minute+time.Second),
		ev("evt_r", payment.EventRefunded, "", "_r", 2500, time.Hour),
	},
	"partial captures": {
		ev("evt_a", payment.EventApproved, "", "", 9000, 0),
		ev("evt_c1", payment.EventCaptured, "", "_c1", 3000, time.Minute),
		ev("evt_c2", payment.EventCaptured, "", "_c2", 3000, 2*time.Minute),
		ev("evt_r1", payment.EventRefunded, "", "_r1", 5000, 3*time.Minute),
		ev("evt_c3", payment.EventCaptured, "", "_c3", 3000, 4*time.Minute),
	},
	"declined": {
		ev("evt_p", payment.EventPending, "", "", 1000, 0),
		ev("evt_d", payment.EventDeclined, "", "", 1000, time.Minute),
		ev("evt_u", "payment_unheard_of", "", "", 1000, time.Minute),
	},
}

func TestAnyPermutationWithDuplicatesEndsTheSame(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for name, story := range stories {
		t.Run(name, func(t *testing.T) {
			ref := "pay_" + strings.ReplaceAll(name, " ", "_") + "_ref"
			mustApply(t, l, rename(story, ref)...)
			want := stateOf(t, l, ref)
			for run := 0; run < 60; run++ {
				seq := append([]store.Input(nil), story...)
				for d := rng.IntN(4); d > 0; d-- { // duplicates, the exact same delivery again
					seq = append(seq, seq[rng.IntN(len(story))])
				}
				rng.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
				pid := fmt.Sprintf("pay_%s_%d", strings.ReplaceAll(name, " ", "_"), run)
				ins := rename(seq, pid)
				if run%2 == 0 {
					mustApply(t, l, ins...)
				} else if _, err := l.ApplyBatch(context.Background(), ins); err != nil {
					t.Fatal(err)
				}
				if got := stateOf(t, l, pid); !reflect.DeepEqual(got, want) {
					order := make([]string, len(seq))
					for i, in := range seq {
						order[i] = in.EventID
					}
					t.Fatalf("order %v:\n got %+v\nwant %+v", order, got, want)
				}
			}
		})
	}
}
