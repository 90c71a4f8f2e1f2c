package reconcile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"knetrecon/internal/events"
	"knetrecon/internal/store"
)

func TestDecodeSamples(t *testing.T) {
	files, _ := filepath.Glob("../checkout/testdata/samples/webhook_*.json")
	if len(files) == 0 {
		t.Fatal("no samples")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in, err := Decode(b, events.Delivery{Seq: 7, ReceivedAt: t0})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if in.PaymentID == "" || in.Amount <= 0 || in.Origin != store.OriginWebhook || in.StreamSeq != 7 || in.OccurredAt.IsZero() {
			t.Fatalf("%s: %+v", f, in)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		give []byte
	}{
		{"not json", []byte(`{"id":`)},
		{"negative", body("evt_1", "payment_captured", "pay_1", "act_1", "-5", "KWD")},
		{"fraction", body("evt_1", "payment_captured", "pay_1", "act_1", "5.5", "KWD")},
		{"exponent", body("evt_1", "payment_captured", "pay_1", "act_1", "1e3", "KWD")},
		{"too big", body("evt_1", "payment_captured", "pay_1", "act_1", "99999999999999999999", "KWD")},
		{"zero capture", body("evt_1", "payment_captured", "pay_1", "act_1", "0", "KWD")},
		{"bad currency", body("evt_1", "payment_captured", "pay_1", "act_1", "5", "kwd")},
		{"capture without action", body("evt_1", "payment_captured", "pay_1", "", "5", "KWD")},
	}
	for _, tt := range tests {
		if _, err := Decode(tt.give, events.Delivery{}); !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// Zero is fine where no money moves (card verification).
	if in, err := Decode(body("evt_1", "card_verified", "pay_1", "", "0", "KWD"), events.Delivery{}); err != nil || in.PaymentID != "pay_1" {
		t.Fatalf("card_verified: %+v %v", in, err)
	}
}

// TestDecodeKeepsControlCharactersInReference: the merchant's reference is free text, so one
// holding a TAB, a newline or any control character JSON allows escaped decodes to exactly that
// text (on the fast path and on encoding/json's) and is a valid ledger input, never
// undecodable: refusing it would dead-letter an authentic payment.
func TestDecodeKeepsControlCharactersInReference(t *testing.T) {
	tests := []struct {
		give string // as the body spells it
		want string
	}{
		{`ORD\t1001`, "ORD\t1001"},
		{`line one\nline two\r\n`, "line one\nline two\r\n"},
		{`a\u0001b\u001fc\u0000`, "a\x01b\x1fc\x00"},
		{"del\x7f", "del\x7f"},
		{`\b\f\/\"`, "\b\f/\""},
	}
	for _, tt := range tests {
		for _, shape := range []string{
			`{"id":"evt_1","type":"payment_captured","created_on":"2026-03-01T10:00:00Z","data":{"id":"pay_1","action_id":"act_1","amount":1000,"currency":"KWD","reference":"%s"}}`,
			// A key in another case sends DecodeFields to encoding/json.
			`{"ID":"evt_1","type":"payment_captured","created_on":"2026-03-01T10:00:00Z","data":{"id":"pay_1","action_id":"act_1","amount":1000,"currency":"KWD","reference":"%s"}}`,
		} {
			in, err := Decode(fmt.Appendf(nil, shape, tt.give), events.Delivery{Seq: 1, ReceivedAt: t0})
			if err != nil {
				t.Errorf("reference %q: %v", tt.give, err)
				continue
			}
			if in.Reference != tt.want || in.PaymentID != "pay_1" || in.Amount != 1000 {
				t.Errorf("reference %q: got %q (payment %q, amount %d), want %q", tt.give, in.Reference, in.PaymentID, in.Amount, tt.want)
			}
		}
	}
}
