// Package reconcile is the reconciler's logic: it turns stream messages into ledger inputs,
// applies a batch in one transaction (a savepoint per message), and decides in one place whether
// each message is acked, redelivered later or dead-lettered. It logs at this boundary; the store
// and payment packages below it only return errors.
package reconcile

import (
	"encoding/json"
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
	ev, err := checkout.DecodeEvent(body)
	if err != nil {
		return store.Input{}, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	in := store.Input{
		EventID:    ev.ID,
		Type:       ev.Type,
		Origin:     store.OriginWebhook,
		ActionID:   ev.Data.ActionID,
		Currency:   ev.Data.Currency,
		Reference:  ev.Data.Reference,
		OccurredAt: ev.Created,
		ReceivedAt: d.ReceivedAt,
		Body:       body,
		BodyHash:   store.BodyHashOf(body),
		StreamSeq:  d.Seq,
	}
	if ev.IsPayment() || strings.HasPrefix(ev.Data.ID, "pay_") {
		in.PaymentID = ev.Data.ID
	}
	if in.OccurredAt.IsZero() && ev.Data.ProcessedOn != "" {
		if t, err := checkout.ParseTime(ev.Data.ProcessedOn); err == nil {
			in.OccurredAt = t
		}
	}
	if a := ev.Data.Amount.String(); a != "" {
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
	in.Customer = rawString(ev.Data.Customer, "id")
	in.Method = rawString(ev.Data.Source, "type")
	if err := in.Validate(); err != nil {
		return store.Input{}, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return in, nil
}

// rawString reads one string field of a raw JSON object ("id" of customer, "type" of source),
// or "" when it is absent or not a string.
func rawString(raw json.RawMessage, field string) string {
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	if field == "type" {
		var v struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &v) != nil {
			return ""
		}
		return v.Type
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return v.ID
}

// now is the package's default clock.
var now = time.Now
