package events_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// A consumer lost in a power cut (its definition never reached the disk) is created again at the
// ledger's own position, not at the start of the retention; one far behind the ledger is made
// again there; one in step is left alone; a stream that ends before the ledger's position (made
// again, empty) is delivered from its start.
func TestConsumerPlacedAtTheLedgersPosition(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := events.NewPublisher(js)
	for i := 1; i <= 10; i++ {
		id := fmt.Sprintf("evt_%d", i)
		if _, err := pub.Publish(ctx, &events.Webhook{Body: []byte(`{}`), EventID: id, EventType: "payment_captured", ReceivedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := events.DefaultConsumerConfig()
	cfg.MaxAckPending = 2
	first := func(c jetstream.Consumer) uint64 {
		t.Helper()
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		md, _ := m.Metadata()
		return md.Sequence.Stream
	}
	c, placed, err := events.EnsureConsumerAt(ctx, js, cfg, 6)
	if err != nil || !strings.Contains(placed, "missing") {
		t.Fatalf("missing consumer: %q %v", placed, err)
	}
	if seq := first(c); seq != 7 {
		t.Fatalf("delivers from seq %d, want 7 (the ledger holds up to 6)", seq)
	}
	// In step with the ledger (its acks in flight at most): left as it is.
	if _, placed, err = events.EnsureConsumerAt(ctx, js, cfg, 6); err != nil || placed != "" {
		t.Fatalf("consumer in step: %q %v", placed, err)
	}
	// The ledger far ahead of the consumer's acks (the consumer's state rolled back): made again.
	cfg.Durable = "behind"
	if _, err := events.EnsureConsumer(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	c, placed, err = events.EnsureConsumerAt(ctx, js, cfg, 9)
	if err != nil || !strings.Contains(placed, "made again") {
		t.Fatalf("consumer behind: %q %v", placed, err)
	}
	if seq := first(c); seq != 10 {
		t.Fatalf("delivers from seq %d, want 10", seq)
	}
	// The stream ends before the ledger's position: from its start.
	cfg.Durable = "ahead"
	c, placed, err = events.EnsureConsumerAt(ctx, js, cfg, 50)
	if err != nil || !strings.Contains(placed, "before the ledger's position") {
		t.Fatalf("stream behind the ledger: %q %v", placed, err)
	}
	if seq := first(c); seq != 1 {
		t.Fatalf("delivers from seq %d, want 1", seq)
	}
}

// The stream's and the consumers' definitions are fsynced once each change: after the stream is
// made, after a consumer is added, and not again while nothing changes.
func TestMetaSyncFollowsTheDefinitions(t *testing.T) {
	dir := t.TempDir()
	ns := eventstest.MustRunNATSAt(t, "127.0.0.1:-1", dir)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	ctx := context.Background()
	ms := events.NewMetaSync(dir) // the store dir given to the embedded server, as the receiver's
	n, err := ms.Sync()
	if err != nil || n == 0 {
		t.Fatalf("the stream's definition: %d synced (%v)", n, err)
	}
	if n, err = ms.Sync(); err != nil || n != 0 {
		t.Fatalf("nothing changed, yet %d synced (%v)", n, err)
	}
	if _, err := events.EnsureConsumer(ctx, js, events.DefaultConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	if n, err = ms.Sync(); err != nil || n == 0 {
		t.Fatalf("the consumer's definition: %d synced (%v)", n, err)
	}
}
