// Package payment is knetrecon's domain in plain Go: Checkout.com payment statuses, what each event
// type means for a payment, the rules that derive a payment's status from the facts the ledger
// holds, the conflicts an operator must see, and money in integer minor units. It does no I/O.
//
// The status is derived, not walked: the ledger keeps facts (amounts captured and refunded, the
// terminal events seen) and Derive turns them into a status. The same facts in any order give the
// same status, so duplicates and out-of-order deliveries cannot move a payment backwards.
package payment

// Status is a payment status in Checkout.com's spelling ("Partially Refunded"). Strings this
// package does not know are kept as they are, never rejected: see Known.
type Status string

// The statuses of GET /payments/{id}. The last five come from newer SDKs.
const (
	StatusPending                 Status = "Pending"
	StatusAuthorized              Status = "Authorized"
	StatusCardVerified            Status = "Card Verified"
	StatusVoided                  Status = "Voided"
	StatusPartiallyCaptured       Status = "Partially Captured"
	StatusCaptured                Status = "Captured"
	StatusPartiallyRefunded       Status = "Partially Refunded"
	StatusRefunded                Status = "Refunded"
	StatusDeclined                Status = "Declined"
	StatusCanceled                Status = "Canceled"
	StatusExpired                 Status = "Expired"
	StatusPaid                    Status = "Paid"
	StatusActive                  Status = "Active"
	StatusRequested               Status = "Requested"
	StatusReturned                Status = "Returned"
	StatusRetryScheduled          Status = "Retry Scheduled"
	StatusAuthenticationRequested Status = "Authentication Requested"
)

// statuses says, for every known status, whether it is final: no webhook is still owed for it, so
// the sweep need not ask Checkout.com about it again. Captured and the refund statuses are final
// for the sweep even though a later refund may still arrive by webhook.
var statuses = map[Status]struct{ final bool }{
	StatusPending:                 {final: false},
	StatusAuthorized:              {final: false},
	StatusCardVerified:            {final: true},
	StatusVoided:                  {final: true},
	StatusPartiallyCaptured:       {final: false},
	StatusCaptured:                {final: true},
	StatusPartiallyRefunded:       {final: true},
	StatusRefunded:                {final: true},
	StatusDeclined:                {final: true},
	StatusCanceled:                {final: true},
	StatusExpired:                 {final: true},
	StatusPaid:                    {final: true},
	StatusActive:                  {final: false},
	StatusRequested:               {final: false},
	StatusReturned:                {final: true},
	StatusRetryScheduled:          {final: false},
	StatusAuthenticationRequested: {final: false},
}

// Statuses returns every status this package knows, in no particular order.
func Statuses() []Status {
	out := make([]Status, 0, len(statuses))
	for s := range statuses {
		out = append(out, s)
	}
	return out
}

// Known reports whether s is one of Checkout.com's documented statuses.
func (s Status) Known() bool {
	_, ok := statuses[s]
	return ok
}

// Final reports whether a payment in status s owes no further webhook. Unknown statuses are not
// final: the sweep keeps asking about them.
func (s Status) Final() bool { return statuses[s].final }

// String returns the status in Checkout.com's spelling.
func (s Status) String() string { return string(s) }
