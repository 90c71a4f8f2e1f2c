package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

func TestConsumerBatches(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := events.NewPublisher(js)
	at := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	for i := 0; i < 25; i++ {
		w := &events.Webhook{Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), EventID: fmt.Sprintf("evt_%d", i),
			EventType: "payment_captured", KeyName: "primary", ReceivedAt: at}
		if i == 24 {
			w.QuarantineReason = "not JSON"
		}
		if _, err := pub.Publish(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	cfg := events.DefaultConsumerConfig()
	if _, err := events.EnsureConsumer(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	c, err := events.EnsureConsumer(ctx, js, cfg) // again: no change
	if err != nil {
		t.Fatal(err)
	}
	// JetStream never gives up on a message: KNETRECON_MAX_DELIVER is the reconciler's own count.
	if info, err := c.Info(ctx); err != nil || info.Config.MaxDeliver != -1 {
		t.Fatalf("server MaxDeliver %d, %v", info.Config.MaxDeliver, err)
	}
	b, err := events.NewBatches(c, 10, 2*time.Second, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	var got int
	var last events.Delivery
	for got < 25 {
		msgs, err := b.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 || len(msgs) > 10 {
			t.Fatalf("batch of %d", len(msgs))
		}
		for _, m := range msgs {
			d, err := events.DeliveryOf(m)
			if err != nil {
				t.Fatal(err)
			}
			if d.NumDelivered != 1 || !d.ReceivedAt.Equal(at) || d.Key != "primary" {
				t.Fatalf("delivery %+v", d)
			}
			last = d
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
			got++
		}
	}
	if !last.Quarantined() || last.QuarantineReason != "not JSON" || last.Seq != 25 || last.Pending != 0 {
		t.Fatalf("last delivery %+v", last)
	}
	// Nothing more: an empty batch after the wait, no error.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if msgs, err := b.Next(short); err != nil || len(msgs) != 0 {
		t.Fatalf("idle: %d, %v", len(msgs), err)
	}

	r, err := events.Replay(ctx, js, events.ReplayFrom{Seq: 20})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if md, _ := m.Metadata(); md.Sequence.Stream != 20 {
		t.Fatalf("replay starts at %d", md.Sequence.Stream)
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	if err := events.DefaultConsumerConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := events.ConsumerConfig{}
	if err := bad.Validate(); err == nil {
		t.Fatal("want errors")
	}
}
