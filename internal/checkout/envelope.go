package checkout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// ErrInvalidEvent is wrapped by every envelope decoding failure; errors.As to *EventError for the reason.
var ErrInvalidEvent = errors.New("invalid event envelope")

// EventError says why a webhook body is not a usable event envelope.
type EventError struct {
	Reason string
}

// Error returns the reason.
func (e *EventError) Error() string { return "invalid event envelope: " + e.Reason }

// Unwrap lets errors.Is match ErrInvalidEvent.
func (e *EventError) Unwrap() error { return ErrInvalidEvent }

func invalid(format string, args ...any) error {
	return &EventError{Reason: fmt.Sprintf(format, args...)}
}

// Event is a Checkout.com webhook envelope. Both documented shapes decode into it: the Workflows
// delivery (`created_on`) and the "get event" shape (`source` and `timestamp`). Unknown fields are
// ignored; the exact bytes received are what the stream keeps, never a re-encoding of this struct.
type Event struct {
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Version string    `json:"version,omitempty"`
	Source  string    `json:"source,omitempty"`
	Created time.Time `json:"-"`
	Data    EventData `json:"data"`
}

// EventData is the `data` object of an event. Money stays as Checkout.com sent it: Amount is the
// raw JSON number, checked and converted by the ledger, never parsed into a float here.
type EventData struct {
	ID              string          `json:"id"`
	ActionID        string          `json:"action_id,omitempty"`
	Amount          Number          `json:"amount,omitempty"`
	Currency        string          `json:"currency,omitempty"`
	Reference       string          `json:"reference,omitempty"`
	ProcessedOn     string          `json:"processed_on,omitempty"`
	ResponseCode    string          `json:"response_code,omitempty"`
	ResponseSummary string          `json:"response_summary,omitempty"`
	Balances        *Balances       `json:"balances,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	Source          json.RawMessage `json:"source,omitempty"`
	Customer        json.RawMessage `json:"customer,omitempty"`
}

// Number is a JSON number kept exactly as sent. Unlike json.Number it refuses a quoted string
// ("1000"): Checkout.com sends amounts as JSON numbers, and an amount in another shape is set
// aside, not guessed at.
type Number string

// UnmarshalJSON keeps a JSON number's text; null leaves it empty; anything else is refused.
func (n *Number) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*n = ""
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*n = Number(b)
	default:
		return &json.UnmarshalTypeError{Value: "non-number", Type: reflect.TypeFor[Number]()}
	}
	return nil
}

// String returns the number's text.
func (n Number) String() string { return string(n) }

// Balances are the running totals Checkout.com attaches to some payment events and to GET /payments.
type Balances struct {
	TotalAuthorized    int64 `json:"total_authorized"`
	TotalVoided        int64 `json:"total_voided"`
	AvailableToVoid    int64 `json:"available_to_void"`
	TotalCaptured      int64 `json:"total_captured"`
	AvailableToCapture int64 `json:"available_to_capture"`
	TotalRefunded      int64 `json:"total_refunded"`
	AvailableToRefund  int64 `json:"available_to_refund"`
}

// IsPayment reports whether the event is about a payment (its type starts with "payment_").
func (e *Event) IsPayment() bool { return strings.HasPrefix(e.Type, "payment_") }

// envelope is the wire shape; times are kept as strings and parsed afterwards. It is decoded in
// one pass: the receiver runs this on every webhook.
type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Version   string          `json:"version"`
	Source    json.RawMessage `json:"source"`
	CreatedOn string          `json:"created_on"`
	Timestamp string          `json:"timestamp"`
	Data      *EventData      `json:"data"`
}

// DecodeEvent parses a webhook body. It accepts both documented envelope shapes, unknown fields,
// and a missing version or _links. It refuses, with an *EventError saying why: a body that is not
// JSON or not an object, a missing or empty id or type, an id not starting with "evt_", an
// unreadable time, and a payment event without data.id.
func DecodeEvent(body []byte) (*Event, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, invalid("empty body")
	}
	if trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return nil, invalid("not JSON")
		}
		return nil, invalid("not a JSON object")
	}
	var env envelope
	if err := json.Unmarshal(trimmed, &env); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "data" {
				return nil, invalid("data is not a JSON object")
			}
			return nil, invalid("field %q has the wrong JSON type", typeErr.Field)
		}
		return nil, invalid("not JSON: %v", err)
	}
	if env.ID == "" {
		return nil, invalid("missing id")
	}
	if !strings.HasPrefix(env.ID, "evt_") {
		return nil, invalid("id %q does not start with evt_", truncate(env.ID, 64))
	}
	if env.Type == "" {
		return nil, invalid("missing type")
	}
	var dataID string
	if env.Data != nil {
		dataID = env.Data.ID
	}
	if err := checkBounds(env.ID, env.Type, dataID); err != nil {
		return nil, err
	}
	ev := &Event{ID: env.ID, Type: env.Type, Version: env.Version}
	if env.Data != nil {
		ev.Data = *env.Data
	}
	// `source` is a string ("gateway") in the get-event shape; tolerate anything else.
	if len(env.Source) > 0 && env.Source[0] == '"' {
		_ = json.Unmarshal(env.Source, &ev.Source)
	}
	created := env.CreatedOn
	if created == "" {
		created = env.Timestamp
	}
	if created != "" {
		t, err := ParseTime(created)
		if err != nil {
			return nil, invalid("created time %q is not RFC 3339", truncate(created, 64))
		}
		ev.Created = t
	}
	if ev.IsPayment() && ev.Data.ID == "" {
		return nil, invalid("payment event without data.id")
	}
	return ev, nil
}

// Bounds of the envelope fields that become a NATS subject, a message header or a ledger key.
// Checkout.com's ids are about 30 bytes and its longest event type about 40; a signed body past
// these bounds is refused by both decoders (the receiver quarantines it: stored, 200, visible).
const (
	MaxEventIDLen   = 128
	MaxEventTypeLen = 64
	MaxDataIDLen    = 128
)

// checkBounds refuses an id, type or data.id too long, or with characters other than ASCII
// letters, digits, '_', '-' (and '.' in a type): they travel in a subject and in headers, where a
// CR, LF, space or wildcard would break the message or the route.
func checkBounds(id, typ, dataID string) error {
	for _, f := range []struct {
		name, v string
		max     int
		dot     bool
	}{{"id", id, MaxEventIDLen, false}, {"type", typ, MaxEventTypeLen, true}, {"data.id", dataID, MaxDataIDLen, false}} {
		if len(f.v) > f.max {
			return invalid("%s of %d bytes, over %d", f.name, len(f.v), f.max)
		}
		for i := 0; i < len(f.v); i++ {
			c := f.v[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && f.dot) {
				return invalid("%s %q has a character outside A-Z, a-z, 0-9, _ and -", f.name, truncate(f.v, 64))
			}
		}
	}
	return nil
}

// ParseTime parses Checkout.com's timestamps: RFC 3339 with up to 7 (or more) fractional digits
// and either Z or a numeric offset.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
