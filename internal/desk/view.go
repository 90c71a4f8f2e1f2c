package desk

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// Field is one labelled value of a discrepancy's details, as the desk shows it.
type Field struct {
	Label, Value string
}

// moneyKeys are the details' keys that hold money in minor units.
var moneyKeys = map[string]bool{
	"amount": true, "captured": true, "refunded": true, "held_refunds": true,
	"ledger_amount": true, "event_amount": true, "posted_amount": true,
	"ledger_captured": true, "ledger_refunded": true, "provider_captured": true, "provider_refunded": true,
	"statement_amount": true, "expected": true, "difference": true,
}

// firstKeys come first, in this order: the sentence that explains the rest.
var firstKeys = []string{"reason", "detail"}

// fields turns a discrepancy's details (a JSON object) into labelled values: money formatted in
// its currency (the details' own, else the payment's), times in loc with their offset, lists
// joined. Details that are not an object are shown whole under "details".
func fields(details []byte, currency string, loc *time.Location) []Field {
	var m map[string]any
	if err := json.Unmarshal(details, &m); err != nil {
		if s := strings.TrimSpace(string(details)); s != "" && s != "null" {
			return []Field{{"details", s}}
		}
		return nil
	}
	cur := currency
	for _, k := range []string{"currency", "ledger_currency", "payment_currency"} {
		if c, ok := m[k].(string); ok && c != "" {
			cur = c
			break
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ia, ib := slices.Index(firstKeys, a), slices.Index(firstKeys, b)
		if ia < 0 {
			ia = len(firstKeys)
		}
		if ib < 0 {
			ib = len(firstKeys)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	out := make([]Field, 0, len(keys))
	for _, k := range keys {
		v := value(m[k], moneyKeys[k], cur, loc)
		if v == "" {
			continue
		}
		out = append(out, Field{Label: strings.ReplaceAll(k, "_", " "), Value: v})
	}
	return out
}

// value writes one detail: money with its currency, a time in loc, a list joined.
func value(v any, money bool, currency string, loc *time.Location) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		if money && x == float64(int64(x)) {
			if s, err := payment.Format(int64(x), currency); err == nil {
				return s + " " + currency
			}
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return stamp(t, loc)
		}
		return x
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, value(e, money, currency, loc))
		}
		return strings.Join(parts, ", ")
	case bool:
		return strconv.FormatBool(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// words says a stuck mark's or any discrepancy's reason in one line: its reason, else its
// detail, else its kind with spaces.
func words(details []byte, kind payment.Kind) string {
	var m map[string]any
	_ = json.Unmarshal(details, &m)
	for _, k := range firstKeys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return strings.ReplaceAll(string(kind), "_", " ")
}

// Step is one line of a payment's timeline: an event applied, or a question to Checkout.com.
type Step struct {
	At time.Time
	// What is the event's type, or "asked Checkout.com".
	What string
	// EventID links to the event's exact body (events only).
	EventID  string
	From     string
	Outcome  string
	Status   string
	Amount   int64
	Currency string
	Note     string
}

// timeline merges a payment's events and checks into one list, oldest first.
func timeline(p *store.PaymentDetail) []Step {
	steps := make([]Step, 0, len(p.Events)+len(p.Checks))
	for _, e := range p.Events {
		steps = append(steps, Step{At: e.AppliedAt, What: e.Type, EventID: e.ID, From: e.Origin, Outcome: e.Outcome,
			Status: e.StatusBefore + " → " + e.StatusAfter, Amount: e.Amount, Currency: e.Currency})
	}
	for _, c := range p.Checks {
		s := Step{At: c.CheckedAt, What: "asked Checkout.com", From: "api", Outcome: c.Outcome,
			Status: "Checkout.com: " + c.ProviderStatus, Note: strings.TrimSpace(c.Action + " " + c.Error)}
		if c.ProviderStatus == "" {
			s.Status = "Checkout.com: no answer"
		}
		steps = append(steps, s)
	}
	slices.SortStableFunc(steps, func(a, b Step) int { return a.At.Compare(b.At) })
	return steps
}

// zone names the page's time zone with its offset now, e.g. "Asia/Kuwait (+03:00)".
func (d *Desk) zone() string {
	return fmt.Sprintf("%s (%s)", d.cfg.Location, d.cfg.Now().In(d.cfg.Location).Format("-07:00"))
}

// age writes a duration as a person reads it: 42m, 3h05m, 2d04h.
func age(dur time.Duration) string {
	dur = dur.Round(time.Minute)
	switch {
	case dur < time.Minute:
		return "under a minute"
	case dur < time.Hour:
		return fmt.Sprintf("%dm", int(dur.Minutes()))
	case dur < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(dur.Hours()), int(dur.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(dur.Hours())/24, int(dur.Hours())%24)
	}
}

// kinds are the discrepancy kinds the lists filter by.
var kinds = []payment.Kind{payment.KindAmountMismatch, payment.KindCapturedAfterExpiry, payment.KindCapturedAfterVoid,
	payment.KindClockSkew, payment.KindConflictingDuplicate, payment.KindCurrencyMismatch, payment.KindDisallowedTransition,
	payment.KindNotSettled, payment.KindOverRefund, payment.KindStatusMismatch, payment.KindStuck, payment.KindUnknownAtProvider,
	payment.KindUnknownStatus, payment.KindWebhookMissing}
