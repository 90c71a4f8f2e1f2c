package store_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// BenchmarkLedgerGrowth applies N KNET payments (pending + captured; default 1,000,000,
// KNETRECON_BENCH_PAYMENTS) in batches of 256 and reports, at each quarter, the throughput of
// that quarter, the Go heap in use and the process's resident memory: memory must stay flat
// while the ledger grows. Run: make bench-growth (several minutes).
func BenchmarkLedgerGrowth(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("KNETRECON_BENCH_PAYMENTS")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		l := storetest.MustOpenLedger(b)
		ctx := context.Background()
		if err := l.SetSchedule(ctx, store.Schedule{VerifyAfter: storetest.VerifyAfter}, "bench"); err != nil {
			b.Fatal(err)
		}
		t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		const batch = 128 // payments per batch: 256 events
		quarter := n / 4
		start := time.Now()
		for p := 0; p < n; p += batch {
			ins := make([]store.Input, 0, 2*batch)
			for i := p; i < min(p+batch, n); i++ {
				pid := fmt.Sprintf("pay_grow%012d", i)
				for _, typ := range []string{payment.EventPending, payment.EventCaptured} {
					in := store.Input{EventID: "evt_" + typ[8:] + "_" + pid, Type: typ, Origin: store.OriginWebhook, PaymentID: pid,
						Amount: 12340, Currency: "KWD", Reference: "ORD-" + pid[8:], Method: "knet",
						OccurredAt: t0.Add(time.Duration(i) * time.Millisecond), ReceivedAt: t0.Add(time.Duration(i)*time.Millisecond + time.Second)}
					if typ == payment.EventCaptured {
						in.ActionID = "act_" + pid
					}
					in.Body = []byte(storetest.WebhookBody(in))
					ins = append(ins, in)
				}
			}
			res, err := l.ApplyBatch(ctx, ins)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			done := p + batch
			if quarter > 0 && done%quarter < batch && done >= quarter {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				elapsed := time.Since(start)
				q := done / quarter
				b.ReportMetric(float64(2*quarter)/elapsed.Seconds(), fmt.Sprintf("events/s_q%d", q))
				b.ReportMetric(float64(ms.HeapInuse)/(1<<20), fmt.Sprintf("heapMiB_q%d", q))
				b.ReportMetric(rssMiB(), fmt.Sprintf("rssMiB_q%d", q))
				start = time.Now()
			}
		}
		due := time.Now()
		if _, _, err := l.DuePayments(ctx, store.DueQuery{Due: t0.Add(24 * time.Hour), Limit: 100}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(due).Microseconds())/1000, "due_query_ms")
	}
}

// rssMiB reads the resident set size from /proc (0 where there is none).
func rssMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
