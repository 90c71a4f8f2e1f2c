package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// Run: go test -run '^$' -bench . -benchtime 20000x ./internal/store/ ./internal/reconcile/
// b.N is the number of events (KNET payments: pending then captured).

func reportRate(b *testing.B, n int, d time.Duration) {
	b.ReportMetric(float64(n)/d.Seconds(), "events/s")
}

func BenchmarkApply(b *testing.B) {
	for _, tt := range []struct {
		name  string
		batch int
	}{{"unbatched", 1}, {"batched-100", 100}, {"batched-256", 256}} {
		b.Run(tt.name, func(b *testing.B) {
			ins := storetest.KNETInputs(b.N)
			l := storetest.MustOpenLedger(b)
			ctx := context.Background()
			if err := l.SetSchedule(ctx, store.Schedule{VerifyAfter: storetest.VerifyAfter}, "bench"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < len(ins); i += tt.batch {
				end := min(i+tt.batch, len(ins))
				if tt.batch == 1 {
					if _, err := l.Apply(ctx, ins[i]); err != nil {
						b.Fatal(err)
					}
					continue
				}
				res, err := l.ApplyBatch(ctx, ins[i:end])
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			reportRate(b, len(ins), time.Since(start))
		})
	}
}

// BenchmarkUpsertCeiling writes the same rows with plain batched SQL: the ceiling.
func BenchmarkUpsertCeiling(b *testing.B) {
	for _, batch := range []int{100, 256} {
		b.Run("batched-"+itoa(batch), func(b *testing.B) {
			ins := storetest.KNETInputs(b.N)
			path := filepath.Join(b.TempDir(), "ledger.db")
			l, err := store.Open(context.Background(), path)
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
			b.ResetTimer()
			start := time.Now()
			storetest.PlainUpsert(b, path, ins, batch)
			reportRate(b, len(ins), time.Since(start))
		})
	}
}

func itoa(n int) string {
	if n >= 10 {
		return itoa(n/10) + string(rune('0'+n%10))
	}
	return string(rune('0' + n))
}
