package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// TestGaugesExportedWithTheSweepOff boots `reconciler run` with KNETRECON_SWEEP_SCHEDULE=off:
// the gauges the alerts page on (KnetreconMoneyDiscrepancy, KnetreconDeadLetters,
// KnetreconStuckPayments) are exported all the same, every alerted kind at 0 from the start, and
// follow the ledger as a money discrepancy and a dead letter arrive.
func TestGaugesExportedWithTheSweepOff(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	pub := events.NewPublisher(js)
	ctx := context.Background()
	publish := func(b []byte, typ, id, quarantine string) {
		t.Helper()
		w := &events.Webhook{Body: b, EventID: id, EventType: typ, ReceivedAt: time.Now(), QuarantineReason: quarantine,
			Signature: checkout.Sign([]byte(testWebhookKey), b)}
		if _, err := pub.Publish(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{
		"KNETRECON_NATS_URL":        ns.ClientURL(),
		"KNETRECON_LEDGER":          filepath.Join(t.TempDir(), "ledger.db"),
		"KNETRECON_WEBHOOK_KEYS":    testWebhookKey,
		"KNETRECON_ADMIN_ADDR":      "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT":      "100ms",
		"KNETRECON_SWEEP_SCHEDULE":  "off",
		"KNETRECON_REPORT_SCHEDULE": "off",
	}
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	m.GaugesEvery = 50 * time.Millisecond
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	base := "http://" + m.AdminAddr()
	// waitMetrics polls /metrics until it holds every line of want.
	waitMetrics := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, metrics := get(t, base+"/metrics")
			missing := ""
			for _, w := range want {
				if !strings.Contains(metrics, "\n"+w+"\n") {
					missing = w
					break
				}
			}
			if missing == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /metrics lacks %q:\n%s", what, missing, grepLines(metrics, "knetrecon_"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitMetrics("an empty ledger",
		`knetrecon_dead_letters_pending 0`, `knetrecon_stuck_payments 0`,
		`knetrecon_open_discrepancies{kind="captured_after_expiry"} 0`, `knetrecon_open_discrepancies{kind="amount_mismatch"} 0`,
		`knetrecon_open_discrepancies{kind="stuck"} 0`, `knetrecon_open_discrepancies{kind="webhook_missing"} 0`)

	// A capture after the payment expired (money the ledger must flag) and a body that cannot
	// be applied.
	publish(webhookBody("evt_1", "payment_pending", "pay_1", "", 1500), "payment_pending", "evt_1", "")
	publish(webhookBody("evt_2", "payment_expired", "pay_1", "act_x", 1500), "payment_expired", "evt_2", "")
	publish(webhookBody("evt_3", "payment_captured", "pay_1", "act_c", 1500), "payment_captured", "evt_3", "")
	publish([]byte(`garbage`), "", "", "not JSON")
	waitMetrics("a discrepancy and a dead letter",
		`knetrecon_open_discrepancies{kind="captured_after_expiry"} 1`, `knetrecon_dead_letters_pending 1`,
		`knetrecon_open_discrepancies{kind="amount_mismatch"} 0`, `knetrecon_stuck_payments 0`)
}
