package checkout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// agree checks the property the receiver relies on: whatever DecodeEvent accepts, DecodeHead
// accepts with the same id and type.
func agree(t *testing.T, body []byte) {
	t.Helper()
	ev, err := DecodeEvent(body)
	h, herr := DecodeHead(body)
	if err == nil && (herr != nil || h.ID != ev.ID || h.Type != ev.Type) {
		t.Fatalf("DecodeEvent accepted %q as %s/%s, DecodeHead = %+v, %v", body, ev.ID, ev.Type, h, herr)
	}
}

func TestDecodeHeadSamples(t *testing.T) {
	paths, _ := filepath.Glob("testdata/samples/webhook_*.json")
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeHead(body); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		agree(t, body)
	}
}

func TestDecodeHeadRejectsLikeDecodeEvent(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{``, "empty body"},
		{`hello`, "not JSON"},
		{`{"id":"evt_1","type":"x"`, "not JSON"},
		{`{"id":"evt_1","type":"x"} x`, "not JSON"},
		{`{"id":"evt_1","type":"x","n":01}`, "not JSON"},
		{`{"id":"evt_1","type":"x","s":"a` + "\x01" + `"}`, "not JSON"},
		{`{"id":"evt_1","type":"x","s":"\q"}`, "not JSON"},
		{`[1,2]`, "not a JSON object"},
		{`{"type":"payment_captured","data":{"id":"pay_1"}}`, "missing id"},
		{`{"id":null,"type":"payment_captured"}`, "missing id"},
		{`{"id":"pay_1","type":"payment_captured"}`, "does not start with evt_"},
		{`{"id":"evt_1","data":{"id":"pay_1"}}`, "missing type"},
		{`{"id":5,"type":"payment_captured"}`, "wrong JSON type"},
		{`{"id":"evt_1","type":"payment_captured","data":{}}`, "without data.id"},
		{`{"id":"evt_1","type":"payment_captured","data":null}`, "without data.id"},
		{`{"id":"evt_1","type":"payment_captured","data":[]}`, "data is not a JSON object"},
		{`{"id":"evt_1","type":"x","created_on":"yesterday"}`, "not RFC 3339"},
		{`{"id":"evt_1","type":"x","version":1}`, "wrong JSON type"},
		// Bounds: what goes into a subject, a header or a ledger key.
		{`{"id":"evt_` + strings.Repeat("a", 200) + `","type":"x"}`, "id of 204 bytes, over 128"},
		{`{"id":"evt_1","type":"` + strings.Repeat("payment_", 500) + `"}`, "type of 4000 bytes, over 64"},
		{`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_` + strings.Repeat("9", 200) + `"}}`, "data.id of 204 bytes"},
		{`{"id":"evt_1\r\nNats-Msg-Id: evt_2","type":"x"}`, "character outside"},
		{`{"id":"evt_1","type":"payment_captured\r\nX: y"}`, "character outside"},
		{`{"id":"evt_1","type":"payment.*.>"}`, "character outside"},
		{`{"id":"evt_1","type":"a b"}`, "character outside"},
		{`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1\u0000"}}`, "character outside"},
		{`{"id":"evt_\u00e9","type":"x"}`, "character outside"},
	}
	for _, tt := range tests {
		_, err := DecodeHead([]byte(tt.give))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeHead(%q) = %v, want %q", tt.give, err, tt.want)
		}
		if _, err := DecodeEvent([]byte(tt.give)); err == nil {
			t.Errorf("DecodeEvent(%q) accepted what DecodeHead refuses", tt.give)
		}
	}
}

func TestDecodeHeadAgreesOnOddInputs(t *testing.T) {
	for _, give := range []string{
		`{"ID":"evt_upper","Type":"payment_approved","DATA":{"Id":"pay_1"}}`,
		`{"id":"evt_first","id":"evt_last","type":"a","type":"b"}`,
		`{"id":"evt_\u0031","type":"t\"q","data":{"id":"p\\1","x":[1,{"y":[]}],"z":-1.5e+3}}`,
		`{"data":{"id":"pay_1"},"data":null,"id":"evt_1","type":"dispute_opened"}`,
		` { "id" : "evt_ws" , "type" : "x" , "timestamp":"2021-06-11T12:01:26.316+00:00" } `,
		`{"id":"evt_1","type":"x","extra":"` + "\xff\xfe" + `"}`,
	} {
		agree(t, []byte(give))
	}
}

func BenchmarkDecode(b *testing.B) {
	body, err := os.ReadFile("testdata/samples/webhook_payment_captured.json")
	if err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("x", 1500-len(body))
	body = []byte(strings.Replace(string(body), `"coupon_code": "NY2018"`, `"coupon_code": "`+pad+`"`, 1))
	ring, _ := NewKeyRing(Key{Secret: []byte("k")})
	sig := Sign([]byte("k"), body)
	b.Run("DecodeEvent", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := DecodeEvent(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeHead", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := DecodeHead(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := ring.Verify(body, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
