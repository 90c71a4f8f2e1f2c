package checkout

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Fields are what the ledger reads of a webhook: the envelope and the few data fields that carry
// money and identity. Amount is the JSON number exactly as sent (minor units, checked by the
// ledger); CustomerID is data.customer.id and SourceType data.source.type, "" when absent or not
// strings.
type Fields struct {
	ID, Type    string
	Created     time.Time
	DataID      string
	ActionID    string
	Amount      string
	Currency    string
	Reference   string
	ProcessedOn string
	CustomerID  string
	SourceType  string
}

// IsPayment reports whether the event is about a payment (its type starts with "payment_").
func (f *Fields) IsPayment() bool { return strings.HasPrefix(f.Type, "payment_") }

// DecodeFields decodes what the ledger needs of body, with DecodeEvent's rules and errors. A
// one-pass scanner reads the plain bodies Checkout.com sends (about five times faster than
// encoding/json); anything it is not sure of (escaped or duplicate keys, keys in another case,
// unexpected types, an invalid envelope) goes to DecodeEvent, which decides. A fuzz test holds the
// two to the same answer.
func DecodeFields(body []byte) (Fields, error) {
	if f, ok := fastFields(body); ok {
		return f, nil
	}
	return slowFields(body)
}

// slowFields is DecodeFields through DecodeEvent.
func slowFields(body []byte) (Fields, error) {
	ev, err := DecodeEvent(body)
	if err != nil {
		return Fields{}, err
	}
	return Fields{
		ID: ev.ID, Type: ev.Type, Created: ev.Created, DataID: ev.Data.ID, ActionID: ev.Data.ActionID,
		Amount: ev.Data.Amount.String(), Currency: ev.Data.Currency, Reference: ev.Data.Reference,
		ProcessedOn: ev.Data.ProcessedOn, CustomerID: rawString(ev.Data.Customer, "id"),
		SourceType: rawString(ev.Data.Source, "type"),
	}, nil
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

// members lists the keys a fast object walk cares about; a key equal to one of them only under
// case folding means "not sure" (encoding/json would match it), and so does a repeated key.
type members []string

// index returns the position of key in m, -1 for a key m does not know, and ok=false when the
// key folds to one of m without being equal to it.
func (m members) index(key []byte) (int, bool) {
	for i, k := range m {
		if string(key) == k {
			return i, true
		}
	}
	for _, k := range m {
		if bytes.EqualFold(key, []byte(k)) {
			return -1, false
		}
	}
	return -1, true
}

var (
	envelopeKeys = members{"id", "type", "version", "source", "created_on", "timestamp", "data"}
	dataKeys     = members{"id", "action_id", "amount", "currency", "reference", "processed_on",
		"response_code", "response_summary", "balances", "metadata", "source", "customer"}
	balanceKeys = members{"total_authorized", "total_voided", "available_to_void", "total_captured",
		"available_to_capture", "total_refunded", "available_to_refund"}
	idKey   = members{"id"}
	typeKey = members{"type"}
)

// fastFields is the scanner's reading of body; ok=false means "ask DecodeEvent".
func fastFields(body []byte) (f Fields, ok bool) {
	s := scanner{b: body}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return f, false
	}
	var created, timestamp string
	var seen, dataSeen uint32
	sure := true
	str := func(dst *string) bool {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			sure = false
			return false
		}
		v, ok := s.str(true)
		*dst = string(v)
		return ok
	}
	// inner reads one string member (want) of a nested object into dst: "" when the value is
	// not an object; not sure when the member is not a string.
	inner := func(want members, dst *string) bool {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '{' {
			_, ok := s.value(false)
			return ok
		}
		found := false
		return s.object(func(key []byte) bool {
			i, fine := want.index(key)
			if !fine || (i == 0 && found) {
				sure = false
				return false
			}
			if i == 0 {
				found = true
				return str(dst)
			}
			_, ok := s.value(false)
			return ok
		})
	}
	data := func() bool {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '{' {
			sure = false
			return false
		}
		return s.object(func(key []byte) bool {
			i, fine := dataKeys.index(key)
			if !fine || (i >= 0 && dataSeen&(1<<i) != 0) {
				sure = false
				return false
			}
			if i >= 0 {
				dataSeen |= 1 << i
			}
			var ignored string
			switch i {
			case 0:
				return str(&f.DataID)
			case 1:
				return str(&f.ActionID)
			case 2:
				s.space()
				start := s.i
				if s.i >= len(s.b) || !(s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
					sure = false
					return false
				}
				if !s.number() {
					return false
				}
				f.Amount = string(s.b[start:s.i])
				return true
			case 3:
				return str(&f.Currency)
			case 4:
				return str(&f.Reference)
			case 5:
				return str(&f.ProcessedOn)
			case 6, 7:
				return str(&ignored)
			case 8:
				return balances(&s, &sure)
			case 10:
				return inner(typeKey, &f.SourceType)
			case 11:
				return inner(idKey, &f.CustomerID)
			default: // metadata and unknown keys: any value
				_, ok := s.value(false)
				return ok
			}
		})
	}
	ok = s.object(func(key []byte) bool {
		i, fine := envelopeKeys.index(key)
		if !fine || (i >= 0 && seen&(1<<i) != 0) {
			sure = false
			return false
		}
		if i >= 0 {
			seen |= 1 << i
		}
		var version string
		switch i {
		case 0:
			return str(&f.ID)
		case 1:
			return str(&f.Type)
		case 2:
			return str(&version)
		case 4:
			return str(&created)
		case 5:
			return str(&timestamp)
		case 6:
			return data()
		default: // source (a string or anything) and unknown keys
			_, ok := s.value(false)
			return ok
		}
	})
	if !ok || !sure {
		return Fields{}, false
	}
	if s.space(); s.i != len(s.b) {
		return Fields{}, false
	}
	if !strings.HasPrefix(f.ID, "evt_") || f.Type == "" || (f.IsPayment() && f.DataID == "") {
		return Fields{}, false
	}
	if created == "" {
		created = timestamp
	}
	if created != "" {
		t, err := ParseTime(created)
		if err != nil {
			return Fields{}, false
		}
		f.Created = t
	}
	return f, true
}

// balances reads data.balances: null, or an object whose known members are integers that fit
// int64 (what encoding/json accepts for Balances); anything else is not sure.
func balances(s *scanner, sure *bool) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return s.literal("null")
	}
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		*sure = false
		return false
	}
	return s.object(func(key []byte) bool {
		i, fine := balanceKeys.index(key)
		if !fine {
			*sure = false
			return false
		}
		if i < 0 {
			_, ok := s.value(false)
			return ok
		}
		s.space()
		start := s.i
		if s.i >= len(s.b) || !(s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') || !s.number() {
			*sure = false
			return false
		}
		if _, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64); err != nil {
			*sure = false
			return false
		}
		return true
	})
}
