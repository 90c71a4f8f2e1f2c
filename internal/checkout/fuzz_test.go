package checkout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzVerifyDecode runs any body and any signature header through the receiver's checks: no
// input may panic, and a body that verifies under the key must decode or be refused with a reason, and the receiver's DecodeHead must accept whatever
// DecodeEvent accepts, with the same id and type.
func FuzzVerifyDecode(f *testing.F) {
	key := []byte("fuzz-key")
	paths, _ := filepath.Glob("testdata/samples/webhook_*.json")
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body, Sign(key, body))
	}
	f.Add([]byte(`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","amount":1.5}}`), "00")
	ring, err := NewKeyRing(Key{Secret: key})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		// No false accept: a header verifies only if it is the body's own HMAC (hex, either case).
		if _, err := ring.Verify(body, sig); err == nil && !strings.EqualFold(strings.TrimSpace(sig), Sign(key, body)) {
			t.Fatalf("signature %q accepted for a body it does not sign", sig)
		}
		if _, err := ring.Verify(body, Sign(key, body)); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		ev, err := DecodeEvent(body)
		if err == nil && (ev.ID == "" || ev.Type == "") {
			t.Fatalf("decoded an event without id or type: %+v", ev)
		}
		agree(t, body)
	})
}
