package payment_test

import (
	"fmt"
	"testing"

	"knetrecon/internal/payment"
)

// step is one event for the pure fold below.
type step struct {
	typ    string
	amount int64
}

// fold learns steps in order the way the ledger does: captures add, refunds post when a capture
// covers them and are held otherwise, held refunds are released after every capture.
func fold(steps []step) (payment.Facts, []payment.Change) {
	var f payment.Facts
	var held []int64
	var changes []payment.Change
	for _, s := range steps {
		before := f
		eff := payment.EffectOf(s.typ)
		f.Seen |= payment.FactOf(eff)
		if payment.StatesAmount(s.typ) && s.amount > f.Amount {
			f.Amount = s.amount
		}
		switch eff {
		case payment.EffectCapture:
			f.Captured += s.amount
		case payment.EffectRefund:
			held = append(held, s.amount)
		}
		var still []int64
		f.Held = 0
		for _, r := range held {
			if f.RefundFits(r) {
				f.Refunded += r
			} else {
				still = append(still, r)
				f.Held += r
			}
		}
		held = still
		changes = append(changes, payment.Compare(before, f))
	}
	return f, changes
}

func TestDerive(t *testing.T) {
	tests := []struct {
		give payment.Facts
		want payment.Status
	}{
		{payment.Facts{}, payment.StatusPending},
		{payment.Facts{Seen: payment.SeenPending}, payment.StatusPending},
		{payment.Facts{Seen: payment.SeenPending | payment.SeenAuthorized}, payment.StatusAuthorized},
		{payment.Facts{Seen: payment.SeenExpired, Amount: 1000}, payment.StatusExpired},
		{payment.Facts{Seen: payment.SeenExpired, Amount: 1000, Captured: 1000}, payment.StatusCaptured},
		{payment.Facts{Amount: 1000, Captured: 500}, payment.StatusPartiallyCaptured},
		{payment.Facts{Amount: 1000, Captured: 1000, Refunded: 300}, payment.StatusPartiallyRefunded},
		{payment.Facts{Amount: 1000, Captured: 1000, Refunded: 1000}, payment.StatusRefunded},
		{payment.Facts{Amount: 1000, Held: 1000}, payment.StatusPending},
		{payment.Facts{Seen: payment.SeenDeclined | payment.SeenExpired}, payment.StatusExpired},
		{payment.Facts{Seen: payment.SeenVoided | payment.SeenAuthorized}, payment.StatusVoided},
		{payment.Facts{Seen: payment.SeenPaid}, payment.StatusPaid},
		{payment.Facts{Seen: payment.SeenCardVerified}, payment.StatusCardVerified},
	}
	for _, tt := range tests {
		if got := payment.Derive(tt.give); got != tt.want {
			t.Errorf("Derive(%+v) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestStatusKnownFinal(t *testing.T) {
	for _, s := range payment.Statuses() {
		if !s.Known() {
			t.Errorf("%q not known", s)
		}
	}
	odd := payment.Status("Pending Review")
	if odd.Known() || odd.Final() || odd.String() != "Pending Review" {
		t.Errorf("unknown status %q: Known %v Final %v", odd, odd.Known(), odd.Final())
	}
	if !payment.StatusCaptured.Final() || payment.StatusPending.Final() {
		t.Error("Captured must be final, Pending not")
	}
	if !payment.Terminal(payment.StatusRefunded) || payment.Terminal(payment.StatusPending) || payment.Terminal("Whatever") {
		t.Error("Terminal wrong")
	}
}

func TestSeenString(t *testing.T) {
	s := payment.SeenExpired | payment.SeenPending
	if s.String() != "pending,expired" || payment.ParseSeen(s.String()) != s || payment.ParseSeen("") != 0 {
		t.Errorf("Seen round trip: %q", s.String())
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		from, to payment.Status
		want     bool
	}{
		{payment.StatusPending, payment.StatusCaptured, true},
		{payment.StatusPending, payment.StatusRefunded, true},
		{payment.StatusCaptured, payment.StatusPending, false},
		{payment.StatusCaptured, payment.StatusExpired, false},
		{payment.StatusExpired, payment.StatusCaptured, false},
		{payment.StatusDeclined, payment.StatusCaptured, false},
		{payment.StatusRefunded, payment.StatusPartiallyRefunded, false},
		{payment.StatusPartiallyRefunded, payment.StatusRefunded, true},
		{payment.StatusCaptured, payment.StatusCaptured, true},
		{"Mystery", payment.StatusCaptured, false},
	}
	for _, tt := range tests {
		if got := payment.Allowed(tt.from, tt.to); got != tt.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

// kinds is every event a KNET payment may see, with amounts of one consistent story or of a
// failure; each ordered pair below must end where the other order ends.
var pairSteps = []step{
	{payment.EventPending, 1000},
	{payment.EventApproved, 1000},
	{payment.EventCaptured, 1000},
	{payment.EventRefunded, 400},
	{payment.EventExpired, 1000},
	{payment.EventCanceled, 1000},
	{payment.EventDeclined, 1000},
	{payment.EventVoided, 1000},
	{payment.EventCapturePending, 1000},
	{payment.EventRefundPending, 400},
	{payment.EventPaid, 1000},
	{"payment_brand_new_type", 1000},
}

func TestEveryPairBothOrders(t *testing.T) {
	for i, a := range pairSteps {
		for j, b := range pairSteps {
			if i >= j {
				continue
			}
			t.Run(a.typ+"+"+b.typ, func(t *testing.T) {
				ab, _ := fold([]step{a, b})
				ba, _ := fold([]step{b, a})
				if ab != ba {
					t.Fatalf("order matters: %+v vs %+v", ab, ba)
				}
				if payment.Derive(ab) != payment.Derive(ba) {
					t.Fatalf("status differs")
				}
			})
		}
	}
}

func TestOutOfOrder(t *testing.T) {
	tests := []struct {
		name          string
		give          []step
		want          payment.Status
		wantCaptured  int64
		wantRefunded  int64
		wantConflicts []payment.Kind
	}{
		{
			name: "captured before approved ends Captured",
			give: []step{{payment.EventCaptured, 1000}, {payment.EventApproved, 1000}},
			want: payment.StatusCaptured, wantCaptured: 1000,
		},
		{
			name: "late pending after captured changes nothing",
			give: []step{{payment.EventPending, 1000}, {payment.EventCaptured, 1000}, {payment.EventPending, 1000}},
			want: payment.StatusCaptured, wantCaptured: 1000,
		},
		{
			name:          "capture after expiry: Captured and captured_after_expiry",
			give:          []step{{payment.EventPending, 1000}, {payment.EventExpired, 1000}, {payment.EventCaptured, 1000}},
			want:          payment.StatusCaptured,
			wantCaptured:  1000,
			wantConflicts: []payment.Kind{payment.KindCapturedAfterExpiry},
		},
		{
			name:          "expiry after capture: still Captured, still reported",
			give:          []step{{payment.EventCaptured, 1000}, {payment.EventExpired, 1000}},
			want:          payment.StatusCaptured,
			wantCaptured:  1000,
			wantConflicts: []payment.Kind{payment.KindCapturedAfterExpiry},
		},
		{
			name:          "capture after cancel",
			give:          []step{{payment.EventCanceled, 1000}, {payment.EventCaptured, 1000}},
			want:          payment.StatusCaptured,
			wantCaptured:  1000,
			wantConflicts: []payment.Kind{payment.KindCapturedAfterExpiry},
		},
		{
			name:          "capture after a void (the sweep's or Checkout.com's): captured_after_void",
			give:          []step{{payment.EventPending, 1000}, {payment.EventVoided, 1000}, {payment.EventCaptured, 1000}},
			want:          payment.StatusCaptured,
			wantCaptured:  1000,
			wantConflicts: []payment.Kind{payment.KindCapturedAfterVoid},
		},
		{
			name:          "void learned after the capture: still reported",
			give:          []step{{payment.EventCaptured, 1000}, {payment.EventVoided, 1000}},
			want:          payment.StatusCaptured,
			wantCaptured:  1000,
			wantConflicts: []payment.Kind{payment.KindCapturedAfterVoid},
		},
		{
			name:          "capture after decline is disallowed but money wins",
			give:          []step{{payment.EventDeclined, 1000}, {payment.EventCaptured, 1000}},
			want:          payment.StatusCaptured,
			wantCaptured:  1000,
			wantConflicts: []payment.Kind{payment.KindDisallowedTransition},
		},
		{
			name:          "declined then expired",
			give:          []step{{payment.EventDeclined, 1000}, {payment.EventExpired, 1000}},
			want:          payment.StatusExpired,
			wantConflicts: []payment.Kind{payment.KindDisallowedTransition},
		},
		{
			name:         "refund before capture is held then counted",
			give:         []step{{payment.EventRefunded, 400}, {payment.EventCaptured, 1000}},
			want:         payment.StatusPartiallyRefunded,
			wantCaptured: 1000, wantRefunded: 400,
		},
		{
			name: "multiple partial refunds reach Refunded only when covered",
			give: []step{{payment.EventPending, 1000}, {payment.EventCaptured, 1000}, {payment.EventRefunded, 300},
				{payment.EventRefunded, 300}, {payment.EventRefunded, 400}},
			want:         payment.StatusRefunded,
			wantCaptured: 1000, wantRefunded: 1000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, changes := fold(tt.give)
			if got := payment.Derive(f); got != tt.want || f.Captured != tt.wantCaptured || f.Refunded != tt.wantRefunded {
				t.Fatalf("got %q captured %d refunded %d; want %q %d %d", got, f.Captured, f.Refunded, tt.want, tt.wantCaptured, tt.wantRefunded)
			}
			var kinds []payment.Kind
			for _, c := range changes {
				for _, cf := range c.Conflicts {
					kinds = append(kinds, cf.Kind)
				}
			}
			if fmt.Sprint(kinds) != fmt.Sprint(tt.wantConflicts) {
				t.Fatalf("conflicts %v, want %v", kinds, tt.wantConflicts)
			}
		})
	}
}

func TestSettled(t *testing.T) {
	if (payment.Facts{Amount: 1000, Captured: 500}).Settled() {
		t.Error("half captured is not settled")
	}
	if !(payment.Facts{Amount: 1000, Captured: 1000}).Settled() {
		t.Error("fully captured is settled")
	}
	if !(payment.Facts{Seen: payment.SeenExpired}).Settled() {
		t.Error("expired without capture is settled")
	}
}
