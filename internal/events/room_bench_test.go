package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// BenchmarkPublishAtLimit: what a full stream costs a publish. A ledger acks everything as it
// comes, one publisher sends 1.5 KB webhooks. "room-…" is a stream kept full of applied history
// (DiscardNew: a refusal gives up the oldest applied messages, 2 % of MaxBytes at a time, and the
// Guard gives up 2.5 % ahead every 500 ms); "discard-old-…" the stream as it was before (JetStream
// discarding its oldest messages, applied or not, one by one); "no-limit" a stream without
// MaxBytes. On a 1 MiB stream 2 % is a dozen messages, so a refusal and a purge come every dozen
// publishes; on a 64 MiB one every ~800.
func BenchmarkPublishAtLimit(b *testing.B) {
	for _, tt := range []struct {
		name       string
		maxBytes   int64
		discardOld bool
	}{{"no-limit", -1, false}, {"discard-old-1MiB", 1 << 20, true}, {"room-1MiB", 1 << 20, false},
		{"discard-old-64MiB", 64 << 20, true}, {"room-64MiB", 64 << 20, false}} {
		b.Run(tt.name, func(b *testing.B) {
			ns := eventstest.MustRunNATS(b)
			_, js := eventstest.MustConnect(b, ns)
			_, cjs := eventstest.MustConnect(b, ns)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg := events.DefaultStreamConfig()
			cfg.MaxBytes = tt.maxBytes
			s, err := events.EnsureStream(ctx, js, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if tt.discardOld {
				info, err := s.Info(ctx)
				if err != nil {
					b.Fatal(err)
				}
				info.Config.Discard = jetstream.DiscardOld
				if _, err := js.UpdateStream(ctx, info.Config); err != nil {
					b.Fatal(err)
				}
			}
			c, err := events.EnsureConsumer(ctx, cjs, events.DefaultConsumerConfig())
			if err != nil {
				b.Fatal(err)
			}
			batches, err := events.NewBatches(c, 256, 50*time.Millisecond, 2*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			defer batches.Stop()
			go func() { // the ledger
				for ctx.Err() == nil {
					msgs, _ := batches.Next(ctx)
					for _, m := range msgs {
						_ = m.Ack()
					}
				}
			}()
			pub := events.NewPublisher(js)
			g := events.NewGuard(pub.Room(), events.GuardConfig{Limit: 0.9, Every: 500 * time.Millisecond}, prometheus.NewRegistry())
			go g.Run(ctx)
			for i := range int(max(tt.maxBytes, 1<<20)/1700) + 100 { // fill the stream with applied history first
				if _, err := pub.Publish(ctx, webhookOf(fmt.Sprintf("evt_warm_%d", i), 1500)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := pub.Publish(ctx, webhookOf(fmt.Sprintf("evt_%d", i), 1500)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(pub.Room().Purged()), "purged")
		})
	}
}
