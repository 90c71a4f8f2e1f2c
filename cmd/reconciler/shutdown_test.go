package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/store"
)

// TestShutdownFinishesTheBatchInHand stops the reconciler while it is busy: every message it was
// handed is applied and acked before Close returns, and a restart picks up the rest without loss.
//
// A pull request in flight at shutdown can leave a few messages delivered to the NATS client
// library but never handed to the reconciler (the library may even ask for more while it drains).
// Nothing applied them, so nothing acked them: JetStream redelivers them after AckWait, which the
// restart shows (AckWait is short here).
func TestShutdownFinishesTheBatchInHand(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	const n = 3000
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("evt_%d", i)
		b := webhookBody(id, "payment_pending", fmt.Sprintf("pay_%d", i), "", 1000)
		w := &events.Webhook{Body: b, EventID: id, EventType: "payment_pending", ReceivedAt: time.Now(),
			Signature: checkout.Sign([]byte(testWebhookKey), b)}
		if _, err := js.PublishMsgAsync(w.Message()); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	vars := map[string]string{
		"KNETRECON_NATS_URL":       ns.ClientURL(),
		"KNETRECON_LEDGER":         filepath.Join(t.TempDir(), "ledger.db"),
		"KNETRECON_WEBHOOK_KEYS":   testWebhookKey,
		"KNETRECON_ADMIN_ADDR":     "127.0.0.1:0",
		"KNETRECON_BATCH_SIZE":     "100",
		"KNETRECON_FETCH_WAIT":     "100ms",
		"KNETRECON_ACK_WAIT":       "2s",
		"KNETRECON_SWEEP_SCHEDULE": "off",
	}
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	events := func(l *store.Ledger) int64 {
		tot, err := l.Totals(ctx)
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
	for events(m.Ledger()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing applied")
		}
		time.Sleep(time.Millisecond)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := store.Open(ctx, cfg.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	applied := events(l)
	l.Close()

	// Every message applied is acked, and none is acked that was not applied. The server takes
	// acks in asynchronously: give it a moment, well within AckWait.
	c, err := js.Consumer(ctx, "CHECKOUT_EVENTS", cfg.Consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	var acked int64
	var info *jetstream.ConsumerInfo
	deadline = time.Now().Add(time.Second)
	for {
		if info, err = c.Info(ctx); err != nil {
			t.Fatal(err)
		}
		acked = int64(info.Delivered.Consumer) - int64(info.NumAckPending)
		if acked == applied || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if acked != applied || info.NumRedelivered != 0 {
		t.Fatalf("after Close: %d applied, %d acked (%d delivered, %d not acked, %d redelivered)",
			applied, acked, info.Delivered.Consumer, info.NumAckPending, info.NumRedelivered)
	}
	t.Logf("stopped after applying %d of %d; %d delivered to the client and not handed over", applied, n, info.NumAckPending)

	m2 := NewMain(cfg, zaptest.NewLogger(t))
	if err := m2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	deadline = time.Now().Add(30 * time.Second)
	for events(m2.Ledger()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("restart applied %d of %d", events(m2.Ledger()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := m2.Ledger().Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
