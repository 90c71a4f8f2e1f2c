package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// TestStartTrustsTheLedgersPosition: a power cut undid the ledger's last commits after their acks
// reached NATS (the ledger is put back to an earlier copy; the consumer keeps its acks), in a quiet
// moment: no new webhook will come to trigger the in-order catch-up. At start the reconciler
// compares its position with the consumer's ack floor and applies the gap from the stream before it
// says ready. When the stream no longer holds the gap, it says so and never calls itself ready.
func TestStartTrustsTheLedgersPosition(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	pub := events.NewPublisher(js)
	ctx := context.Background()
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			id, pid := fmt.Sprintf("evt_%03d", i), fmt.Sprintf("pay_%03d", i)
			b := webhookBody(id, "payment_captured", pid, "act_"+pid, 1000+i)
			if _, err := pub.Publish(ctx, &events.Webhook{Body: b, EventID: id, EventType: "payment_captured", ReceivedAt: time.Now(),
				Signature: checkout.Sign([]byte(testWebhookKey), b)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger.db")
	vars := map[string]string{"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_LEDGER": ledger, "KNETRECON_ADMIN_ADDR": "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT": "100ms", "KNETRECON_WEBHOOK_KEYS": testWebhookKey, "KNETRECON_SWEEP_SCHEDULE": "off",
		"KNETRECON_REPORT_SCHEDULE": "off", "KNETRECON_FACT_KEYS": "fact-key", "KNETRECON_DATA_DIR": dir}
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := func() *Main {
		t.Helper()
		m := NewMain(cfg, zaptest.NewLogger(t))
		if err := m.Run(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	ackFloor := func() uint64 {
		c, err := js.Consumer(ctx, events.StreamName, cfg.Consumer.Durable)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.AckFloor.Stream
	}
	m := start()
	publish(1, 10)
	poll(t, "10 applied and acked", func() bool { return ackFloor() == 10 })
	backup := filepath.Join(dir, "before-the-cut.db")
	if seq, err := m.Ledger().Backup(ctx, backup); err != nil || seq != 10 {
		t.Fatalf("backup at %d: %v", seq, err)
	}
	publish(11, 40)
	poll(t, "40 applied and acked", func() bool { return ackFloor() == 40 })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	cut := func() {
		t.Helper()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(ledger + suffix)
		}
		raw, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ledger, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cut() // the commits of 11..40 undone; their acks kept

	m = start()
	poll(t, "ready", func() bool { code, _ := get(t, "http://"+m.AdminAddr()+"/readyz"); return code == 200 })
	if pos, err := m.Ledger().Position(ctx); err != nil || pos != 40 {
		t.Fatalf("ready at position %d (%v), want 40: ready with acked webhooks missing", pos, err)
	}
	for _, id := range []string{"pay_011", "pay_040"} {
		if p, err := m.Ledger().Payment(ctx, id); err != nil || p.Captured == 0 {
			t.Fatalf("%s after the start: %+v %v", id, p, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// The stream lost what the ledger lacks (its retention passed them): loud, never ready.
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(21)); err != nil {
		t.Fatal(err)
	}
	cut()
	m = start()
	var body string
	poll(t, "not ready, saying why", func() bool {
		code, b := get(t, "http://"+m.AdminAddr()+"/readyz")
		body = b
		return code == 503 && strings.Contains(b, "no longer holds")
	})
	if !strings.Contains(body, "seq 11 to 20") || !strings.Contains(body, "rebuild") {
		t.Fatalf("readyz: %s", body)
	}
	_, metrics := get(t, "http://"+m.AdminAddr()+"/metrics")
	if !strings.Contains(metrics, "knetrecon_reconciler_ledger_gap_lost_messages 10") {
		t.Fatalf("metrics lack the lost gap:\n%s", grepLines(metrics, "gap"))
	}
	// What the stream still held is applied all the same; still not ready.
	poll(t, "seq 21 to 40 applied", func() bool {
		p, err := m.Ledger().Payment(ctx, "pay_040")
		return err == nil && p.Captured > 0
	})
	if code, _ := get(t, "http://"+m.AdminAddr()+"/readyz"); code != 503 {
		t.Fatalf("readyz %d with a lost gap", code)
	}
}
