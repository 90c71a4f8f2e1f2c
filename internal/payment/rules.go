package payment

import (
	"fmt"
	"strings"
)

// Effect is what an event type tells the ledger about a payment.
type Effect int

// Effects. EffectNone events are kept in the payment's history and change nothing else.
const (
	EffectNone Effect = iota
	EffectPending
	EffectAuthorized
	EffectCardVerified
	EffectDeclined
	EffectExpired
	EffectCanceled
	EffectVoided
	EffectPaid
	// EffectCapture moves money in: a journal posting keyed by the action id.
	EffectCapture
	// EffectRefund moves money out: a journal posting keyed by the action id.
	EffectRefund
)

// Checkout.com payment event types (the envelope's "type").
const (
	EventPending                        = "payment_pending"
	EventApproved                       = "payment_approved"
	EventDeclined                       = "payment_declined"
	EventExpired                        = "payment_expired"
	EventCanceled                       = "payment_canceled"
	EventVoided                         = "payment_voided"
	EventVoidDeclined                   = "payment_void_declined"
	EventCaptured                       = "payment_captured"
	EventCaptureDeclined                = "payment_capture_declined"
	EventCapturePending                 = "payment_capture_pending"
	EventRefunded                       = "payment_refunded"
	EventRefundDeclined                 = "payment_refund_declined"
	EventRefundPending                  = "payment_refund_pending"
	EventPaid                           = "payment_paid"
	EventAuthenticationFailed           = "payment_authentication_failed"
	EventAuthorizationIncremented       = "payment_authorization_incremented"
	EventAuthorizationIncrementDeclined = "payment_authorization_increment_declined"
	EventCardVerified                   = "card_verified"
	// EventSnapshot is not a Checkout.com type: it is what the sweep calls a GET /payments/{id}
	// answer fed through the ledger. Its effect comes from the reported status (EffectOfStatus).
	EventSnapshot = "api_payment_snapshot"
)

// eventRule is one row of the event table.
type eventRule struct {
	effect Effect
	// statesAmount: the event's amount is the payment's (authorised) amount, not a movement.
	statesAmount bool
}

// events is the event table: what each type does. Types not listed are kept in the history and do
// nothing else (EffectNone), so a type Checkout.com invents tomorrow is stored, never rejected.
var events = map[string]eventRule{
	EventPending:                        {EffectPending, true},
	EventApproved:                       {EffectAuthorized, true},
	EventDeclined:                       {EffectDeclined, true},
	EventAuthenticationFailed:           {EffectDeclined, true},
	EventExpired:                        {EffectExpired, true},
	EventCanceled:                       {EffectCanceled, true},
	EventVoided:                         {EffectVoided, false},
	EventCaptured:                       {EffectCapture, false},
	EventRefunded:                       {EffectRefund, false},
	EventPaid:                           {EffectPaid, false},
	EventCardVerified:                   {EffectCardVerified, false},
	EventVoidDeclined:                   {EffectNone, false},
	EventCaptureDeclined:                {EffectNone, false},
	EventCapturePending:                 {EffectNone, false},
	EventRefundDeclined:                 {EffectNone, false},
	EventRefundPending:                  {EffectNone, false},
	EventAuthorizationIncremented:       {EffectNone, false},
	EventAuthorizationIncrementDeclined: {EffectNone, false},
	EventSnapshot:                       {EffectNone, true},
}

// EffectOf returns what an event type does; EffectNone for types it does not know.
func EffectOf(eventType string) Effect { return events[eventType].effect }

// StatesAmount reports whether the event's amount is the payment's own amount (pending, approved,
// declined, expired, canceled, an API snapshot) rather than a movement of money.
func StatesAmount(eventType string) bool { return events[eventType].statesAmount }

// KnownEvent reports whether eventType is in the event table.
func KnownEvent(eventType string) bool {
	_, ok := events[eventType]
	return ok
}

// MovesMoney reports whether events of this type are journal postings (captures and refunds).
func MovesMoney(eventType string) bool {
	e := EffectOf(eventType)
	return e == EffectCapture || e == EffectRefund
}

// EffectOfStatus maps a status Checkout.com reports (an API snapshot) to the fact it proves.
// Money statuses map to EffectNone: money is learned from actions, each with its action id.
func EffectOfStatus(s Status) Effect {
	switch s {
	case StatusPending:
		return EffectPending
	case StatusAuthorized:
		return EffectAuthorized
	case StatusCardVerified:
		return EffectCardVerified
	case StatusDeclined:
		return EffectDeclined
	case StatusExpired:
		return EffectExpired
	case StatusCanceled:
		return EffectCanceled
	case StatusVoided:
		return EffectVoided
	case StatusPaid:
		return EffectPaid
	}
	return EffectNone
}

// Seen is the set of non-money facts the ledger has learned about a payment.
type Seen uint16

// The facts. Their names (factNames) are what the ledger's payments.seen column holds.
const (
	SeenPending Seen = 1 << iota
	SeenAuthorized
	SeenCardVerified
	SeenDeclined
	SeenExpired
	SeenCanceled
	SeenVoided
	SeenPaid
)

var factNames = []struct {
	fact Seen
	name string
}{
	{SeenPending, "pending"},
	{SeenAuthorized, "authorized"},
	{SeenCardVerified, "card_verified"},
	{SeenDeclined, "declined"},
	{SeenExpired, "expired"},
	{SeenCanceled, "canceled"},
	{SeenVoided, "voided"},
	{SeenPaid, "paid"},
}

var effectFacts = map[Effect]Seen{
	EffectPending:      SeenPending,
	EffectAuthorized:   SeenAuthorized,
	EffectCardVerified: SeenCardVerified,
	EffectDeclined:     SeenDeclined,
	EffectExpired:      SeenExpired,
	EffectCanceled:     SeenCanceled,
	EffectVoided:       SeenVoided,
	EffectPaid:         SeenPaid,
}

// FactOf returns the fact an effect records, or 0 for money and EffectNone.
func FactOf(e Effect) Seen { return effectFacts[e] }

// Has reports whether every fact in f is in s.
func (s Seen) Has(f Seen) bool { return s&f == f }

// Any reports whether any fact in f is in s.
func (s Seen) Any(f Seen) bool { return s&f != 0 }

// String lists the facts, comma-separated, in a fixed order: "pending,expired".
func (s Seen) String() string {
	var b strings.Builder
	for _, fn := range factNames {
		if s.Has(fn.fact) {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(fn.name)
		}
	}
	return b.String()
}

// ParseSeen reads String's output; names it does not know are ignored.
func ParseSeen(str string) Seen {
	var s Seen
	for _, name := range strings.Split(str, ",") {
		for _, fn := range factNames {
			if fn.name == name {
				s |= fn.fact
			}
		}
	}
	return s
}

// Facts is everything the ledger knows about one payment. Every field only grows (Amount is the
// largest stated amount), so the facts learned from any order of the same events are equal.
type Facts struct {
	// Seen holds the non-money facts.
	Seen Seen
	// Amount is the payment's own amount as stated by its events (the largest seen), 0 if none did.
	Amount int64
	// Captured is the sum of the posted captures.
	Captured int64
	// Refunded is the sum of the posted refunds; never more than Captured.
	Refunded int64
	// Held is the sum of refunds known but not posted because no capture covers them (yet).
	Held int64
}

// Failed is the set of facts that end a payment without money: declined, expired, canceled, voided.
const Failed = SeenDeclined | SeenExpired | SeenCanceled | SeenVoided

// Derive returns the status the facts prove. Read it top to bottom: the first row that holds wins.
// Money beats everything: a capture after an expiry (the KNET seven-minute race) is Captured.
func Derive(f Facts) Status {
	switch {
	case f.Captured > 0 && f.Refunded >= f.Captured:
		return StatusRefunded
	case f.Captured > 0 && f.Refunded > 0:
		return StatusPartiallyRefunded
	case f.Captured > 0 && f.Amount > f.Captured:
		return StatusPartiallyCaptured
	case f.Captured > 0:
		return StatusCaptured
	case f.Seen.Has(SeenPaid):
		return StatusPaid
	case f.Seen.Has(SeenVoided):
		return StatusVoided
	case f.Seen.Has(SeenExpired):
		return StatusExpired
	case f.Seen.Has(SeenCanceled):
		return StatusCanceled
	case f.Seen.Has(SeenDeclined):
		return StatusDeclined
	case f.Seen.Has(SeenAuthorized):
		return StatusAuthorized
	case f.Seen.Has(SeenCardVerified):
		return StatusCardVerified
	}
	return StatusPending
}

// RefundFits reports whether a refund of amount can be posted now without refunding more than
// was captured. A refund that does not fit is held, not dropped.
func (f Facts) RefundFits(amount int64) bool { return f.Refunded+amount <= f.Captured }

// Settled reports whether all the money a payment will see is known: it is fully captured, or it
// ended without a capture. Refunds still held then are an over-refund.
func (f Facts) Settled() bool {
	if f.Captured > 0 {
		return f.Amount > 0 && f.Captured >= f.Amount
	}
	return f.Seen.Any(Failed | SeenPaid)
}

// transitions is the table of status changes the rules allow: to the left, the status the ledger
// held; to the right, the statuses it may move to. Any other change is a discrepancy; the change
// still happens when money proves it (Derive), so the ledger never hides money it has seen.
var transitions = map[Status][]Status{
	StatusPending:           {StatusAuthorized, StatusCardVerified, StatusPartiallyCaptured, StatusCaptured, StatusPartiallyRefunded, StatusRefunded, StatusPaid, StatusDeclined, StatusExpired, StatusCanceled, StatusVoided},
	StatusAuthorized:        {StatusPartiallyCaptured, StatusCaptured, StatusPartiallyRefunded, StatusRefunded, StatusPaid, StatusDeclined, StatusExpired, StatusCanceled, StatusVoided},
	StatusCardVerified:      {},
	StatusPartiallyCaptured: {StatusCaptured, StatusPartiallyRefunded, StatusRefunded},
	StatusCaptured:          {StatusPartiallyRefunded, StatusRefunded},
	StatusPartiallyRefunded: {StatusRefunded},
	StatusRefunded:          {},
	StatusPaid:              {},
	StatusDeclined:          {},
	StatusExpired:           {},
	StatusCanceled:          {},
	StatusVoided:            {},
}

// lateCapture lists the statuses a capture may still overturn: the customer paid at the last
// second and Checkout.com captured after it expired or the customer canceled. Allowed, because
// the money is real, and reported as captured_after_expiry.
var lateCapture = map[Status]bool{StatusExpired: true, StatusCanceled: true}

// Allowed reports whether the rules let a payment go from one status to another. Staying put is
// always allowed.
func Allowed(from, to Status) bool {
	if from == to {
		return true
	}
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Terminal reports whether no status change is allowed out of s.
func Terminal(s Status) bool {
	next, ok := transitions[s]
	return ok && len(next) == 0
}

// Kind names a discrepancy: something an operator must look at. The names are part of the
// ledger's interface (finance scripts read them): keep them.
type Kind string

// Discrepancy kinds.
const (
	// KindCapturedAfterExpiry: money was captured on a payment that also expired or was canceled.
	KindCapturedAfterExpiry Kind = "captured_after_expiry"
	// KindDisallowedTransition: the facts moved the status in a way the rules do not allow.
	KindDisallowedTransition Kind = "disallowed_transition"
	// KindOverRefund: refunds beyond the captured amount once all captures are known.
	KindOverRefund Kind = "over_refund"
	// KindAmountMismatch: two sources disagree on an amount (same action id, or ledger vs API).
	KindAmountMismatch Kind = "amount_mismatch"
	// KindCurrencyMismatch: an event's currency differs from the payment's.
	KindCurrencyMismatch Kind = "currency_mismatch"
	// KindConflictingDuplicate: the same event id arrived with a different body.
	KindConflictingDuplicate Kind = "conflicting_duplicate"
	// KindUnknownStatus: Checkout.com reported a status this package does not know.
	KindUnknownStatus Kind = "unknown_status"
	// KindWebhookMissing: the API knows something no webhook told us (the sweep).
	KindWebhookMissing Kind = "webhook_missing"
	// KindUnknownAtProvider: Checkout.com does not know a payment the ledger holds (the sweep).
	KindUnknownAtProvider Kind = "unknown_at_provider"
	// KindStatusMismatch: the status Checkout.com reports differs from the ledger's (the sweep).
	KindStatusMismatch Kind = "status_mismatch"
	// KindCapturedAfterVoid: money was captured on a payment that was also voided (by the sweep
	// or by Checkout.com): the customer paid for an order the merchant thinks void.
	KindCapturedAfterVoid Kind = "captured_after_void"
	// KindNotSettled: a capture or refund the acquiring bank's statement does not show, past the
	// settlement delay (reconciler settle).
	KindNotSettled Kind = "not_settled"
	// KindStuck: a payment open past KNETRECON_STUCK_AFTER, or one the sweep cannot move (void
	// refused, the API failing again and again). It holds only while the payment is open.
	KindStuck Kind = "stuck"
	// KindClockSkew: an event dated further ahead of its receipt than the ledger's skew allows;
	// it is applied, timed by its receipt.
	KindClockSkew Kind = "clock_skew"
	// KindDepositMissing: a posting day's net that the settlement statements promise and that
	// did not reach the merchant's bank account within the days allowed (reconciler deposits).
	// It is not a payment's: its subject is the posting day (and batch).
	KindDepositMissing Kind = "deposit_missing"
	// KindDepositAmountMismatch: the credit for a posting day's net arrived with another amount.
	KindDepositAmountMismatch Kind = "deposit_amount_mismatch"
)

// MoneyKinds are the discrepancy kinds that mean money is wrong or unposted: each is alerted.
var MoneyKinds = []Kind{KindAmountMismatch, KindStatusMismatch, KindCurrencyMismatch, KindOverRefund,
	KindCapturedAfterExpiry, KindCapturedAfterVoid, KindWebhookMissing, KindNotSettled, KindDepositMissing, KindDepositAmountMismatch}

// Conflict is a discrepancy found by the rules, before the ledger stores it.
type Conflict struct {
	Kind Kind
	// Detail says what happened, with both sides.
	Detail string
}

// Change is the outcome of learning one more fact about a payment.
type Change struct {
	From, To  Status
	Conflicts []Conflict
}

// Changed reports whether the status moved.
func (c Change) Changed() bool { return c.From != c.To }

// Compare derives the status before and after and lists the conflicts the step raises. A step
// that does not move the status raises no transition conflict: a late payment_pending after
// Captured is simply history.
func Compare(before, after Facts) Change {
	c := Change{From: Derive(before), To: Derive(after)}
	lateBefore := before.Captured > 0 && before.Seen.Any(SeenExpired|SeenCanceled)
	lateAfter := after.Captured > 0 && after.Seen.Any(SeenExpired|SeenCanceled)
	if lateAfter && !lateBefore {
		c.Conflicts = append(c.Conflicts, Conflict{
			Kind:   KindCapturedAfterExpiry,
			Detail: fmt.Sprintf("captured %d on a payment also %s", after.Captured, after.Seen&(SeenExpired|SeenCanceled)),
		})
	}
	voidedBefore := before.Captured > 0 && before.Seen.Has(SeenVoided)
	if after.Captured > 0 && after.Seen.Has(SeenVoided) && !voidedBefore {
		c.Conflicts = append(c.Conflicts, Conflict{
			Kind:   KindCapturedAfterVoid,
			Detail: fmt.Sprintf("captured %d on a payment also voided", after.Captured),
		})
	}
	if c.Changed() && !Allowed(c.From, c.To) && !(lateCapture[c.From] && after.Captured > 0) && !(c.From == StatusVoided && after.Captured > 0) {
		c.Conflicts = append(c.Conflicts, Conflict{
			Kind:   KindDisallowedTransition,
			Detail: fmt.Sprintf("%s -> %s", c.From, c.To),
		})
	}
	return c
}
