package report_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"knetrecon/internal/report"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// benchDir holds benchLedger's file; TestMain removes it.
var benchDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		_ = os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchLedger is built once for every run of BenchmarkDaily: 300,000 KNET payments, pending then
// captured, spread evenly over 30 days (10,000 a day).
var benchLedger = sync.OnceValues(func() (*store.Ledger, error) {
	const payments = 300_000
	dir, err := os.MkdirTemp("", "knetrecon-report-bench-")
	if err != nil {
		return nil, err
	}
	benchDir = dir
	l, err := store.Open(context.Background(), dir+"/ledger.db")
	if err != nil {
		return nil, err
	}
	ins := storetest.KNETInputs(2 * payments)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, kuwait)
	spread := 30 * 24 * time.Hour / time.Duration(len(ins))
	for i := range ins {
		ins[i].OccurredAt = start.Add(time.Duration(i) * spread)
		ins[i].ReceivedAt = ins[i].OccurredAt.Add(time.Second)
	}
	for i := 0; i < len(ins); i += 256 {
		if _, err := l.ApplyBatch(context.Background(), ins[i:min(i+256, len(ins))]); err != nil {
			return nil, err
		}
	}
	return l, nil
})

// BenchmarkDaily builds one day's report from a ledger of 300,000 payments over 30 days.
func BenchmarkDaily(b *testing.B) {
	l, err := benchLedger()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		d, err := report.Build(context.Background(), l, "2026-10-15", kuwait, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Postings) < 9_000 || !d.Balanced {
			b.Fatalf("%d postings, balanced %v", len(d.Postings), d.Balanced)
		}
	}
}

// BenchmarkWriteXLSX writes the workbook of a busy day: 10,000 postings in two currencies (a
// tenth refunds), as many in the Late sheet's worst case.
func BenchmarkWriteXLSX(b *testing.B) {
	day := time.Date(2026, 10, 15, 0, 0, 0, 0, kuwait)
	d := &report.Daily{Date: "2026-10-15", TimeZone: "Asia/Kuwait", From: day, To: day.AddDate(0, 0, 1), GeneratedAt: day.AddDate(0, 0, 1)}
	for i := range 10_000 {
		kind, cur := "capture", "KWD"
		if i%10 == 9 {
			kind = "refund"
		}
		if i%50 == 0 {
			cur = "USD"
		}
		at := day.Add(time.Duration(i) * 8 * time.Second)
		d.Postings = append(d.Postings, store.PostingLine{ActionID: fmt.Sprintf("act_%020d", i), PaymentID: fmt.Sprintf("pay_%020d", i),
			Reference: fmt.Sprintf("ORD-%d", i), Kind: kind, State: "posted", Amount: int64(1000 + i), Currency: cur, Origin: "webhook",
			EventID: fmt.Sprintf("evt_%020d", i), OccurredAt: at, LearnedAt: at, CountedAt: at})
	}
	b.ResetTimer()
	for range b.N {
		var buf bytes.Buffer
		if err := d.WriteXLSX(&buf); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(buf.Len()), "bytes/file")
	}
}
