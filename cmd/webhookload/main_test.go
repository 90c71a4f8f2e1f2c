package main

import (
	"bufio"
	"bytes"
	"net/http"
	"testing"

	"knetrecon/internal/checkout"
)

// The load must be what the receiver accepts: signed, decodable, one event id per request.
func TestRequestsAreSignedAndUnique(t *testing.T) {
	g := &generator{path: "/webhooks/checkout", key: []byte("bench-key"), size: 1500}
	tpl := g.template("127.0.0.1:1")
	ring, err := checkout.NewKeyRing(checkout.Key{Secret: []byte("bench-key")})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 3 {
		raw := append([]byte(nil), g.next(tpl)...)
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		if _, err := body.ReadFrom(req.Body); err != nil {
			t.Fatal(err)
		}
		if body.Len() != 1500 {
			t.Fatalf("body is %d bytes, want 1500", body.Len())
		}
		if _, err := ring.Verify(body.Bytes(), req.Header.Get(checkout.SignatureHeader)); err != nil {
			t.Fatal(err)
		}
		ev, err := checkout.DecodeEvent(body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if seen[ev.ID] {
			t.Fatalf("event id %s sent twice", ev.ID)
		}
		seen[ev.ID] = true
	}
}
