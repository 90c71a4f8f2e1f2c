package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// TestShutdownFinishesTheBatchInHand stops the reconciler while it is busy: whatever it received
// is applied and acked before Close returns, and a restart picks up the rest without loss.
func TestShutdownFinishesTheBatchInHand(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	const n = 3000
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("evt_%d", i)
		w := &events.Webhook{Body: webhookBody(id, "payment_pending", fmt.Sprintf("pay_%d", i), "", 1000),
			EventID: id, EventType: "payment_pending", ReceivedAt: time.Now()}
		if _, err := js.PublishMsgAsync(w.Message()); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	vars := map[string]string{
		"KNETRECON_NATS_URL":       ns.ClientURL(),
		"KNETRECON_LEDGER":         filepath.Join(t.TempDir(), "ledger.db"),
		"KNETRECON_ADMIN_ADDR":     "127.0.0.1:0",
		"KNETRECON_BATCH_SIZE":     "100",
		"KNETRECON_FETCH_WAIT":     "100ms",
		"KNETRECON_SWEEP_SCHEDULE": "off",
	}
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	events := func(m *Main) int64 {
		tot, err := m.Ledger().Totals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tot.Events
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for events(m) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing applied")
		}
		time.Sleep(time.Millisecond)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, "CHECKOUT_EVENTS", cfg.Consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 {
		t.Fatalf("%d messages delivered and not acked after Close", info.NumAckPending)
	}
	t.Logf("stopped after %d of %d (ack floor %d)", info.AckFloor.Stream, n, info.AckFloor.Stream)

	m2 := NewMain(cfg, zaptest.NewLogger(t))
	if err := m2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	deadline = time.Now().Add(30 * time.Second)
	for events(m2) < n {
		if time.Now().After(deadline) {
			t.Fatalf("restart applied %d of %d", events(m2), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := m2.Ledger().Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
