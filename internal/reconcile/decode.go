// Package reconcile is the reconciler's logic: it turns stream messages into ledger inputs,
// applies a batch in one transaction (a savepoint per message), and decides in one place whether
// each message is acked, redelivered later or dead-lettered. It logs at this boundary; the store
// and payment packages below it only return errors.
package reconcile

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// ErrUndecodable wraps every reason a message body cannot become a ledger input: it is
// dead-lettered, never retried.
var ErrUndecodable = errors.New("undecodable event")

// Decode turns a webhook body, as the receiver stored it, into a ledger input. It refuses bodies
// that are not a valid envelope, amounts that are not a positive integer of minor units (or zero,
// for events that move no money), and currencies with no known exponent.
func Decode(body []byte, d events.Delivery) (store.Input, error) {
	ev, err := checkout.DecodeFields(body)
	if err != nil {
		return store.Input{}, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	in := store.Input{
		EventID:    ev.ID,
		Type:       ev.Type,
		Origin:     store.OriginWebhook,
		ActionID:   ev.ActionID,
		Currency:   ev.Currency,
		Reference:  ev.Reference,
		Customer:   ev.CustomerID,
		Method:     ev.SourceType,
		OccurredAt: ev.Created,
		ReceivedAt: d.ReceivedAt,
		Body:       body,
		BodyHash:   store.BodyHashOf(body),
		StreamSeq:  d.Seq,
	}
	if ev.IsPayment() || strings.HasPrefix(ev.DataID, "pay_") {
		in.PaymentID = ev.DataID
	}
	if in.OccurredAt.IsZero() && ev.ProcessedOn != "" {
		if t, err := checkout.ParseTime(ev.ProcessedOn); err == nil {
			in.OccurredAt = t
		}
	}
	if a := ev.Amount; a != "" {
		if a == "0" && !payment.MovesMoney(ev.Type) {
			in.Amount = 0
		} else if in.Amount, err = payment.ParseMinor(a); err != nil {
			return store.Input{}, fmt.Errorf("%w: event %s: amount: %w", ErrUndecodable, ev.ID, err)
		}
	}
	if in.Currency != "" {
		if _, err := payment.Exponent(in.Currency); err != nil {
			return store.Input{}, fmt.Errorf("%w: event %s: %w", ErrUndecodable, ev.ID, err)
		}
	}
	if err := in.Validate(); err != nil {
		return store.Input{}, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return in, nil
}

// now is the package's default clock.
var now = time.Now
