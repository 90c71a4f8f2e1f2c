package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
	// Reconciler a starts first and takes the lease; b's Checkout.com is unreachable (port 1):
	// as a standby it never calls it, and its ledger ends the same as a's.
	var ms []*Main
	for _, name := range []string{"a", "b"} {
		extra := map[string]string{
			"KNETRECON_CONSUMER": "reconciler-" + name, "KNETRECON_DATA_DIR": filepath.Join(dir, name),
			"KNETRECON_FACT_KEYS_FILE": keys, "KNETRECON_SWEEP_SCHEDULE": "@every 1s", "KNETRECON_SWEEP_LEASE_TTL": "1s",
			"KNETRECON_REPORT_SCHEDULE": "off",
		}
		if name == "b" {
			extra["KNETRECON_CHECKOUT_URL"] = "http://127.0.0.1:1"
		}
		cfg, _, err := ParseConfig("run", nil, env(p.env(t, filepath.Join(dir, name, "ledger.db"), extra)), nil)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMain(cfg, zaptest.NewLogger(t).Named(name))
		if err := m.Run(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		ms = append(ms, m)
		if name == "a" {
			poll(t, "a to take the lease", m.lease.Held)
		}
	}
	leader, standby := 0, ms[1]
	if standby.lease.Held() {
		t.Fatal("both reconcilers hold the sweep's lease")
	}

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

	// Both ledgers, at the same stream position, are the same.
	poll(t, "both ledgers at the same position with the same digest", func() bool {
		a, err1 := ms[0].Ledger().Digest(ctx)
		b, err2 := standby.Ledger().Digest(ctx)
		return err1 == nil && err2 == nil && a.Same(b) && a.Payments == 1
	})
	if v := testutil.ToFloat64(standby.leader); v != 0 {
		t.Fatalf("the standby's sweep_leader gauge is %v", v)
	}

	// The leader stops: it gives the lease up and the standby takes the sweep over.
	stopped := time.Now()
	if err := ms[leader].Close(); err != nil {
		t.Fatal(err)
	}
	poll(t, "the standby to take the sweep over", standby.lease.Held)
	t.Logf("sweep taken over %s after the leader stopped", time.Since(stopped).Round(time.Millisecond))
	// It asks its (unreachable) Checkout.com now: the failure is the check's outcome.
	if _, err := standby.checkNow(ctx, id, "ops", "after the take-over"); err == nil || errors.Is(err, reconcile.ErrRefused) {
		t.Fatalf("the new leader's check against an unreachable API: %v", err)
	}
}
