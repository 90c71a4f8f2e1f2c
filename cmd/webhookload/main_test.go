package main

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
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

// The bare receiver is a bound only if it does the work: it checks signatures and stores.
func TestBareReceiver(t *testing.T) {
	for _, ack := range []string{"sync", "none"} {
		h, stop, err := bareHandler("bench-key", ack)
		if err != nil {
			t.Fatal(err)
		}
		g := &generator{path: "/webhooks/checkout", key: []byte("bench-key"), size: 1500}
		raw := g.next(g.template("127.0.0.1:1"))
		for _, tamper := range []bool{false, true} {
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if tamper {
				req.Header.Set(checkout.SignatureHeader, "00")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			want := http.StatusOK
			if tamper {
				want = http.StatusUnauthorized
			}
			if rec.Code != want {
				t.Errorf("ack %s, tampered %v: status %d, want %d", ack, tamper, rec.Code, want)
			}
		}
		stop()
	}
	if _, _, err := bareHandler("k", "later"); err == nil {
		t.Error("an unknown -bare-ack was accepted")
	}
}
