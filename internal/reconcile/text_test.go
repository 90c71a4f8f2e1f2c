package reconcile_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/reconcile/reconciletest"
	"knetrecon/internal/store/storetest"
	"knetrecon/internal/webhook"
)

// TestControlCharactersInReferenceApplied sends signed captures whose reference holds a TAB, a
// newline or other control characters JSON allows escaped down the whole road (the receiver's
// handler, the stream, the consumer, a SQLite file): each is stored, applied with its posting and
// its reference kept exactly as decoded, and none is dead-lettered.
func TestControlCharactersInReferenceApplied(t *testing.T) {
	const key = "whsec_text_test"
	ring, err := checkout.NewKeyRing(checkout.Key{Name: "primary", Secret: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	ledger := storetest.MustOpenLedger(t)
	road := reconciletest.MustRunRoad(t, ledger, ring)
	h := webhook.New(webhook.Config{Keys: ring, Publisher: events.NewPublisher(road.JS), MaxBodyBytes: 1 << 20,
		Log: zaptest.NewLogger(t), Metrics: webhook.NewMetrics(prometheus.NewRegistry())})

	tests := []struct {
		give string // the reference as the body spells it, JSON-escaped
		want string
	}{
		{`ORD\t1001`, "ORD\t1001"},
		{`\tORD-1002\t`, "\tORD-1002\t"},
		{`line one\nline two\r\n`, "line one\nline two\r\n"},
		{`a\u0001b\u001fc`, "a\x01b\x1fc"},
		{`nul\u0000in`, "nul\x00in"},
		{"del\x7f raw", "del\x7f raw"},
		{`\b\f`, "\b\f"},
	}
	for i, tt := range tests {
		b := fmt.Appendf(nil, `{"id":"evt_text_%d","type":"payment_captured","version":"1.0.1","created_on":"2026-03-01T10:00:00Z",`+
			`"data":{"id":"pay_text_%d","action_id":"act_text_%d","amount":1500,"currency":"KWD","reference":"%s","source":{"type":"knet"}}}`,
			i, i, i, tt.give)
		req := httptest.NewRequest(http.MethodPost, "/webhooks/checkout", bytes.NewReader(b))
		req.Header.Set(checkout.SignatureHeader, checkout.Sign([]byte(key), b))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "stored") {
			t.Fatalf("reference %q: receiver answered %d %s, want 200 stored", tt.give, rec.Code, rec.Body)
		}
	}

	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tot, err := ledger.Totals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tot.DeadLetters != 0 {
			dls, _ := ledger.DeadLetters(ctx, false, 10)
			var reasons []string
			for _, d := range dls {
				reasons = append(reasons, d.Reason)
			}
			t.Fatalf("%d dead-lettered, want none: %q", tot.DeadLetters, reasons)
		}
		if tot.Postings == int64(len(tests)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d postings: %+v", len(tests), tot)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, tt := range tests {
		p, err := ledger.Payment(ctx, fmt.Sprintf("pay_text_%d", i))
		if err != nil {
			t.Fatalf("reference %q: %v", tt.give, err)
		}
		if p.Reference != tt.want {
			t.Errorf("reference %q stored as %q, want %q", tt.give, p.Reference, tt.want)
		}
		if p.Captured != 1500 || len(p.Postings) != 1 || p.Postings[0].ActionID != fmt.Sprintf("act_text_%d", i) {
			t.Errorf("reference %q: captured %d, postings %+v", tt.give, p.Captured, p.Postings)
		}
	}
}
