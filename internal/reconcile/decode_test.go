package reconcile

import (
	"errors"
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
