package desk_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"knetrecon/internal/desk"
	"knetrecon/internal/payment"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
)

// BenchmarkPages serves the desk's pages from a ledger of KNETRECON_BENCH_PAYMENTS payments
// (default 100,000; the 1M takes minutes to build) spread over the last 30 days, one in
// a thousand with an open discrepancy: each sub-benchmark is one page, over real HTTP.
func BenchmarkPages(b *testing.B) {
	n := 100_000
	if v := os.Getenv("KNETRECON_BENCH_PAYMENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	l, err := store.Open(ctx, filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	// The ledger's clock follows the inputs while it is built, as it would have in production:
	// each posting counts on the day it arrived.
	clock := now
	l.Now = func() time.Time { return clock }
	built := time.Now()
	batch := make([]store.Input, 0, 1000)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		clock = batch[len(batch)-1].ReceivedAt
		if _, err := l.ApplyBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range n {
		id := strconv.Itoa(400000000 + i)
		at := now.Add(-time.Duration(n-i) * (30 * 24 * time.Hour / time.Duration(n)))
		amount := int64(i%997+1) * 10
		in := store.Input{EventID: "evt_" + id, Type: payment.EventCaptured, Origin: store.OriginWebhook, PaymentID: "pay_" + id,
			ActionID: "act_" + id, Amount: amount, Currency: "KWD", Method: "knet", Reference: "ORD-" + id,
			OccurredAt: at, ReceivedAt: at, Body: []byte(`{}`), KNET: &store.KNETIDs{TransactionID: id, PaymentID: "1" + id}}
		if i%1000 == 0 { // expired first: the capture is captured_after_expiry
			batch = append(batch, store.Input{EventID: "evx_" + id, Type: payment.EventExpired, Origin: store.OriginWebhook,
				PaymentID: in.PaymentID, Amount: amount, Currency: "KWD", Method: "knet", Reference: in.Reference,
				OccurredAt: at.Add(-time.Minute), ReceivedAt: at.Add(-time.Minute), Body: []byte(`{}`)})
		}
		batch = append(batch, in)
		if len(batch) >= 1000 {
			flush()
		}
	}
	flush()
	clock = now
	b.Logf("ledger of %d payments built in %s", n, time.Since(built).Round(time.Second))
	reports := b.TempDir()
	written, err := report.Build(ctx, l, "2026-11-15", kuwait, now)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := report.WriteFiles(reports, written); err != nil {
		b.Fatal(err)
	}
	d, err := desk.New(desk.Config{Ledger: l, Location: kuwait, Now: l.Now, ReportDir: reports})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	d.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	mid := strconv.Itoa(400000000 + n/2)
	for _, pg := range []struct{ name, path string }{
		{"home", "/"}, // the first load sums the 29 closed days; the next ones only today

		{"search_reference", "/search?q=ORD-" + mid},
		{"search_knet_id", "/search?q=" + mid},
		{"search_reference_lower", "/search?q=ord-" + mid},
		{"search_event_id", "/search?q=evt_" + mid},
		{"search_prefix_many", "/search?q=ord-4000"}, // 50 listed with status, amount and date
		{"discrepancies", "/discrepancies?kind=captured_after_expiry"},
		{"payment", "/payments/pay_" + mid},
		{"list", "/payments"},
		{"list_status", "/payments?status=Captured"},
		{"list_day", "/payments?day=2026-11-15"},
		{"list_kind", "/payments?kind=captured_after_expiry"},
		{"list_page_deep", "/payments?before=" + now.AddDate(0, 0, -25).Format(time.RFC3339Nano)},
		{"dead_letters", "/dead-letters"},
		{"report_day_written", "/reports/2026-11-15.csv"}, // as the reconciler wrote it
		{"report_day_built", "/reports/2026-11-16.csv"},   // built now, with the whole-ledger balance check
	} {
		b.Run(pg.name, func(b *testing.B) {
			for range b.N {
				resp, err := client.Get(srv.URL + pg.path)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != http.StatusSeeOther {
					b.Fatalf("%s: %d", pg.path, resp.StatusCode)
				}
			}
		})
	}
}
