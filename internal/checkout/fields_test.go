package checkout

import (
	"os"
	"path/filepath"
	"testing"
)

// sameFields checks the property DecodeFields relies on: whenever the fast scanner answers, it
// answers what DecodeEvent (slowFields) does.
func sameFields(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	f, ok := fastFields(body)
	if !ok {
		return false
	}
	g, err := slowFields(body)
	if err != nil {
		t.Fatalf("fast path accepted %q, DecodeEvent refused: %v", body, err)
	}
	if f != g {
		t.Fatalf("%q:\nfast %+v\nslow %+v", body, f, g)
	}
	return true
}

func TestDecodeFieldsSamples(t *testing.T) {
	paths, _ := filepath.Glob("testdata/samples/webhook_*.json")
	if len(paths) == 0 {
		t.Fatal("no samples")
	}
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !sameFields(t, body) {
			t.Errorf("%s: the fast path should read a real Checkout.com webhook", p)
		}
		f, err := DecodeFields(body)
		if err != nil || f.ID == "" || f.DataID == "" {
			t.Fatalf("%s: %+v, %v", p, f, err)
		}
	}
}

func TestDecodeFieldsFallsBack(t *testing.T) {
	for _, tt := range []struct {
		give string
		fast bool
		err  bool
	}{
		{`{"id":"evt_1","type":"payment_captured","created_on":"2026-03-01T10:00:00Z","data":{"id":"pay_1","action_id":"act_1","amount":1000,"currency":"KWD","customer":{"id":"cus_1"},"source":{"type":"knet"},"balances":{"total_captured":1000}}}`, true, false},
		{`{"ID":"evt_1","type":"payment_captured","data":{"id":"pay_1"}}`, false, false},
		{`{"id":"evt_1","id":"evt_2","type":"x"}`, false, false},
		{`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","amount":"1000"}}`, false, true}, // string amounts are refused
		{`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","balances":{"total_captured":1.5}}}`, false, true},
		{`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","customer":{"Id":"cus_1"}}}`, false, false},
		{`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","customer":{"id":5}}}`, false, false},
		{`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","customer":"cus_1","source":null}}`, true, false},
		{`{"id":"evt_1","type":"payment_captured","data":{}}`, false, true},
		{`{"id":"evt_1","type":"x","created_on":"soon"}`, false, true},
		{`{"id":"evt_1","type":"x"} trailing`, false, true},
		{`{"id":"evt_\u0031","type":"x","data":{"reference":"a\"b"}}`, true, false},
	} {
		if got := sameFields(t, []byte(tt.give)); got != tt.fast {
			t.Errorf("%s: fast path %v, want %v", tt.give, got, tt.fast)
		}
		if _, err := DecodeFields([]byte(tt.give)); (err != nil) != tt.err {
			t.Errorf("%s: error %v, want error %v", tt.give, err, tt.err)
		}
	}
}

// FuzzDecodeFields holds the fast scanner to DecodeEvent. Run: go test -fuzz FuzzDecodeFields ./internal/checkout
func FuzzDecodeFields(f *testing.F) {
	paths, _ := filepath.Glob("testdata/samples/webhook_*.json")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"id":"evt_1","type":"payment_refunded","timestamp":"2026-03-01T10:00:00.1234567+03:00","data":{"id":"pay_1","action_id":"act_1","amount":-0,"balances":null,"metadata":[1,{"a":null}],"source":{"type":"knet","Type":"x"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sameFields(t, body)
		_, err := DecodeFields(body)
		if _, serr := slowFields(body); (err == nil) != (serr == nil) {
			t.Fatalf("%q: DecodeFields error %v, DecodeEvent error %v", body, err, serr)
		}
	})
}

func BenchmarkDecodeFields(b *testing.B) {
	body, err := os.ReadFile("testdata/samples/webhook_payment_captured.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeFields(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := slowFields(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
