package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/reconcile"
)

// TestTwoReconcilersOneSweep: two reconcilers on one stream, each with its consumer, ledger and
// data directory, and the same fact key. Exactly one holds the sweep's lease; the other refuses to
// ask Checkout.com for the desk (it never calls it). When the holder stops, the other takes the
// sweep over. Both ledgers hold the same payments throughout.
func TestTwoReconcilersOneSweep(t *testing.T) {
	p := newPipeline(t, nil)
	ctx := context.Background()
	dir := t.TempDir()
	keys := filepath.Join(dir, "fact.keys")
	if err := ensureKeyFile(keys); err != nil {
		t.Fatal(err)
	}
	var ms []*Main
	for _, name := range []string{"a", "b"} {
		vars := p.env(t, filepath.Join(dir, name, "ledger.db"), map[string]string{
			"KNETRECON_CONSUMER": "reconciler-" + name, "KNETRECON_DATA_DIR": filepath.Join(dir, name),
			"KNETRECON_FACT_KEYS_FILE": keys, "KNETRECON_SWEEP_SCHEDULE": "@every 1s", "KNETRECON_SWEEP_LEASE_TTL": "1s",
			"KNETRECON_REPORT_SCHEDULE": "off",
		})
		cfg, _, err := ParseConfig("run", nil, env(vars), nil)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMain(cfg, zaptest.NewLogger(t).Named(name))
		if err := m.Run(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ms = append(ms, m)
	}
	leader := -1
	poll(t, "exactly one sweep leader", func() bool {
		a, b := ms[0].lease.Held(), ms[1].lease.Held()
		switch {
		case a && !b:
			leader = 0
		case b && !a:
			leader = 1
		default:
			return false
		}
		return true
	})
	standby := ms[1-leader]

	id := p.pay(t, 2_500)
	if _, err := p.sim.Complete(id, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	p.idle(t)
	for _, m := range ms {
		poll(t, "the capture in both ledgers", func() bool {
			d, err := m.Ledger().Payment(ctx, id)
			return err == nil && d.Captured == 2_500
		})
	}
	// The standby does not ask Checkout.com, even for the desk; the leader does.
	if _, err := standby.checkNow(ctx, id, "ops", "why"); !errors.Is(err, reconcile.ErrRefused) {
		t.Fatalf("the standby's check: %v, want a refusal", err)
	}
	if out, err := ms[leader].checkNow(ctx, id, "ops", "why"); err != nil {
		t.Fatalf("the leader's check: %v", err)
	} else {
		t.Logf("the leader's check: %s", out)
	}
	// The check is a fact: the standby's ledger has it too, with who asked.
	poll(t, "the check in the standby's audit trail", func() bool {
		acts, err := standby.Ledger().Actions(ctx, "payment:"+id, 10)
		return err == nil && len(acts) == 1 && acts[0].Who == "ops" && acts[0].Action == "check"
	})

	// The leader stops: it gives the lease up and the standby takes the sweep over.
	stopped := time.Now()
	if err := ms[leader].Close(); err != nil {
		t.Fatal(err)
	}
	poll(t, "the standby to take the sweep over", standby.lease.Held)
	t.Logf("sweep taken over %s after the leader stopped", time.Since(stopped).Round(time.Millisecond))
	if _, err := standby.checkNow(ctx, id, "ops", "after the take-over"); err != nil {
		t.Fatalf("the new leader's check: %v", err)
	}
}
