package reconcile

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

// BenchmarkConsumer measures the reconciler end to end from a pre-filled stream: pull, decode,
// apply in batches, commit, ack. The ceiling sub-benchmark writes the same rows with plain
// batched SQL in the same run. b.N is the number of events.
//
//	go test -run '^$' -bench . -benchtime 20000x ./internal/store/ ./internal/reconcile/
func BenchmarkConsumer(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		name := "end-to-end-256"
		if sync != "FULL" {
			name += "-sync-normal" // what the ledger ran before its commits were synced
		}
		b.Run(name, func(b *testing.B) { benchConsumer(b, sync) })
	}
	b.Run("ceiling-plain-upsert-256", func(b *testing.B) {
		ins := storetest.KNETInputs(b.N)
		path := filepath.Join(b.TempDir(), "ledger.db")
		l, err := store.Open(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		l.Close()
		b.ResetTimer()
		start := time.Now()
		storetest.PlainUpsert(b, path, ins, 256)
		b.ReportMetric(float64(len(ins))/time.Since(start).Seconds(), "events/s")
	})
}

// benchConsumer is one run of BenchmarkConsumer with the ledger's writer at synchronous.
func benchConsumer(b *testing.B, synchronous string) {
	{
		ins := storetest.KNETInputs(b.N)
		ns := eventstest.MustRunNATS(b)
		nc, js := eventstest.MustConnect(b, ns)
		eventstest.MustEnsureStream(b, js)
		ctx := context.Background()
		for i, in := range ins {
			w := &events.Webhook{Body: in.Body, EventID: in.EventID, EventType: in.Type, ReceivedAt: time.Now()}
			if _, err := js.PublishMsgAsync(w.Message()); err != nil {
				b.Fatal(err)
			}
			if i%1000 == 999 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		_ = nc.Flush()
		ledger, err := store.OpenWith(ctx, filepath.Join(b.TempDir(), "ledger.db"), store.Options{Synchronous: synchronous})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ledger.Close() })
		if err := ledger.SetSchedule(ctx, store.Schedule{VerifyAfter: storetest.VerifyAfter}, "bench"); err != nil {
			b.Fatal(err)
		}
		cfg := events.DefaultConsumerConfig()
		c, err := events.EnsureConsumer(ctx, js, cfg)
		if err != nil {
			b.Fatal(err)
		}
		batches, err := events.NewBatches(c, 256, 200*time.Millisecond, 5*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		proc := NewProcessor(ledger, zap.NewNop(), NewMetrics(prometheus.NewRegistry()), cfg.MaxDeliver)
		loop := NewConsumer(proc, batches, zap.NewNop())
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.ResetTimer()
		start := time.Now()
		go func() { done <- loop.Run(runCtx, 5*time.Second) }()
		applied := func() int {
			// The metric, not a COUNT(*) over the ledger: polling must not compete with the consumer.
			return int(testutil.ToFloat64(proc.metrics.applied.WithLabelValues("payment_pending", "applied")) +
				testutil.ToFloat64(proc.metrics.applied.WithLabelValues("payment_captured", "applied")))
		}
		for applied() < len(ins) {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("consumer stuck at %d of %d", applied(), len(ins))
			}
			time.Sleep(2 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if tot, err := ledger.Totals(ctx); err != nil || tot.Events != int64(len(ins)) {
			b.Fatalf("ledger holds %+v, %v; want %d events", tot, err, len(ins))
		}
		b.ReportMetric(float64(len(ins))/elapsed.Seconds(), "events/s")
		if n := histCount(proc.metrics.batchSize); n > 0 {
			b.ReportMetric(float64(len(ins))/float64(n), "msgs/batch")
			b.ReportMetric(histSum(proc.metrics.applySeconds)/elapsed.Seconds(), "apply-busy")
		}
	}
}

func histCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	_ = h.Write(&m)
	return m.GetHistogram().GetSampleCount()
}

func histSum(h prometheus.Histogram) float64 {
	var m dto.Metric
	_ = h.Write(&m)
	return m.GetHistogram().GetSampleSum()
}
