package events_test

import (
	"context"
	"testing"
	"time"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// TestBatchesAfterJetStreamRestart: the receiver restarts JetStream inside its embedded server
// once a full store has room again; the server then forgets every pull request. The reconciler's
// Batches notices (two missed heartbeats) and pulls again: the messages stored after the restart
// are delivered within seconds, with no restart of either side.
func TestBatchesAfterJetStreamRestart(t *testing.T) {
	cfg := events.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	ns, err := events.RunEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := eventstest.MustConnect(t, ns)
	_, cjs := eventstest.MustConnect(t, ns) // the reconciler's own connection
	eventstest.MustEnsureStream(t, js)
	ctx := context.Background()
	c, err := events.EnsureConsumer(ctx, cjs, events.DefaultConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.NewBatches(c, 16, 200*time.Millisecond, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	pub := events.NewPublisher(js)
	next := func(id string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := pub.Publish(ctx, webhookOf(id, 100)); err != nil {
			t.Fatal(err)
		}
		for time.Since(start) < within {
			msgs, err := b.Next(ctx)
			if err != nil {
				t.Logf("pull: %v", err) // the missed heartbeats, once
				continue
			}
			for _, m := range msgs {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
				if d, _ := events.DeliveryOf(m); d.MsgID == id {
					return time.Since(start)
				}
			}
		}
		t.Fatalf("%s not delivered within %s", id, within)
		return 0
	}
	next("evt_before", 5*time.Second)
	if err := events.RestartJetStream(ns, cfg); err != nil {
		t.Fatal(err)
	}
	d := next("evt_after", 15*time.Second)
	t.Logf("delivered %s after JetStream restarted", d.Round(time.Millisecond))
	if d > 8*time.Second {
		t.Fatalf("delivered %s after the restart, want within a few seconds", d)
	}
}
