package settle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/settle"
	"knetrecon/internal/statement"
	"knetrecon/internal/store"
)

// BenchmarkMatch matches statements of 10,000 and 100,000 lines against as many ledger entries:
// the matching itself, in memory (it should grow linearly).
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			day := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			entries := make([]settle.Entry, n)
			lines := make([]settle.Line, n)
			for i := range entries {
				tx := strconv.Itoa(200000000 + i)
				entries[i] = settle.Entry{PaymentID: "pay_" + tx, ActionID: "act_" + tx, Kind: "capture", Amount: int64(i%997+1) * 10,
					At: day, KNETTransactionID: tx, Reference: "ORD-" + tx}
				lines[i] = settle.Line{Number: i + 2, TransactionID: tx, Amount: entries[i].Amount, Kind: "capture"}
			}
			p := settle.Period{From: time.Date(2026, 12, 1, 0, 0, 0, 0, kuwait), To: time.Date(2026, 12, 2, 0, 0, 0, 0, kuwait), Location: kuwait}
			b.ResetTimer()
			for range b.N {
				if r := settle.Match(lines, entries, p); r.Matched != n {
					b.Fatalf("matched %d", r.Matched)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/line")
		})
	}
}

// BenchmarkSettleRun is `reconciler settle` whole: read a statement of one day's captures and
// match it against a ledger of KNETRECON_BENCH_PAYMENTS captured payments (default 100,000) over
// ten days, recording the run. KNETRECON_BENCH_PAYMENTS=1000000 is the 1M ledger
// (building it takes minutes).
func BenchmarkSettleRun(b *testing.B) {
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
	start := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	var statement bytes.Buffer
	statement.WriteString("knet_transaction_id,amount,date\n")
	lines := 0
	built := time.Now()
	batch := make([]store.Input, 0, 1000)
	flush := func() {
		if _, err := l.ApplyBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range n {
		day := i % 10
		at := start.AddDate(0, 0, day).Add(time.Duration(i%36000) * time.Second)
		tx := strconv.Itoa(300000000 + i)
		amount := int64(i%997+1) * 10
		batch = append(batch, store.Input{EventID: "evt_" + tx, Type: payment.EventCaptured, Origin: store.OriginWebhook,
			PaymentID: "pay_" + tx, ActionID: "act_" + tx, Amount: amount, Currency: "KWD", Method: "knet",
			OccurredAt: at, ReceivedAt: at, Body: []byte(`{}`), KNET: &store.KNETIDs{TransactionID: tx, PaymentID: "1" + tx}})
		if day == 9 {
			fmt.Fprintf(&statement, "%s,%d.%03d,%s\n", tx, amount/1000, amount%1000, at.In(kuwait).Format("2006-01-02"))
			lines++
		}
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	b.Logf("ledger of %d payments built in %s; statement of %d lines", n, time.Since(built).Round(time.Second), lines)
	raw := statement.Bytes()
	// The statement travels the stream as a fact: it must fit a message (8 MiB).
	fact, _ := json.Marshal(reconcile.Fact{Kind: reconcile.FactSettle, Settle: reconcile.SettleFactOf("bench.csv", raw, statementLayout)})
	if len(fact) > 8<<20 {
		b.Fatalf("a statement of %d lines (%d bytes) makes a fact of %d bytes: more than a message holds", lines, len(raw), len(fact))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// A new statement each time (one more line), so every run is matched and recorded.
		stmt := append(append([]byte{}, raw...), fmt.Sprintf("9%08d,1.000,2026-12-01\n", i)...)
		var rep *settle.Report
		err := l.Update(ctx, func(tx *store.Tx) error {
			var err error
			rep, err = settle.Apply(ctx, tx, stmt, settle.Options{Mapping: settle.DefaultMapping(), Location: kuwait,
				NotSettledAfter: 1000 * time.Hour})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Matched < lines-1 {
			b.Fatalf("matched %d of %d", rep.Matched, lines)
		}
	}
	b.ReportMetric(float64(lines), "lines")
	b.ReportMetric(float64(len(raw))/1e6, "statement-MB")
	b.ReportMetric(float64(len(fact))/1e6, "fact-MB")
}

var statementLayout = statement.Layout{}
