package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/reconcile"
)

// TestSweepLeaseFenced: two sweepers configured with different lease TTLs time the lease by the
// bucket's one TTL; a holder that stalled past its lease and wakes after another took over has its
// sweep facts refused (dead-lettered as stale_lease) in the ledger, while the new holder's apply.
func TestSweepLeaseFenced(t *testing.T) {
	p := newPipeline(t, nil)
	vars := p.env(t, filepath.Join(t.TempDir(), "ledger.db"), map[string]string{"KNETRECON_SWEEP_SCHEDULE": "off",
		"KNETRECON_REPORT_SCHEDULE": "off", "KNETRECON_FACT_KEYS": "fact-key", "KNETRECON_DATA_DIR": t.TempDir()})
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	id := p.pay(t, 1_000)
	poll(t, "the payment applied", func() bool { _, err := m.Ledger().Payment(ctx, id); return err == nil })

	_, js := connectJS(t, p.nats)
	log := zaptest.NewLogger(t)
	// The first reconciler creates the bucket with its TTL (300 ms); the second, configured with
	// 1 h, times its lease by the bucket's all the same.
	kv, err := events.EnsureLeases(ctx, js, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureLeases(ctx, js, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, local := range []time.Duration{300 * time.Millisecond, time.Hour} {
		if ttl, err := leaseTTL(ctx, kv, local, log); err != nil || ttl != 300*time.Millisecond {
			t.Fatalf("local %s: lease timed by %s (%v), want the bucket's 300ms", local, ttl, err)
		}
	}
	ring, err := checkout.NewKeyRing(checkout.ParseKeys("fact-key")...)
	if err != nil {
		t.Fatal(err)
	}
	holder := func(name string) (*events.Lease, *reconcile.FactBus) {
		l := events.NewLease(kv, events.SweepLease, name, 300*time.Millisecond)
		epoch, err := events.BucketEpoch(ctx, kv)
		if err != nil {
			t.Fatal(err)
		}
		bus := reconcile.NewFactBus(js, m.Ledger(), nil, ring, name)
		bus.Wait = 10 * time.Second
		bus.Fence = func() reconcile.LeaseTerm { return reconcile.LeaseTerm{Holder: name, Epoch: epoch, Term: l.Term()} }
		return l, bus
	}
	leaseA, busA := holder("reconciler-a")
	leaseB, busB := holder("reconciler-b")
	schedule := func(bus *reconcile.FactBus, at time.Time) error {
		_, err := bus.Commit(ctx, reconcile.Fact{Kind: reconcile.FactSchedule, ID: "schedule:" + id + ":" + bus.By + at.Format(time.RFC3339Nano),
			At: time.Now(), Schedule: &reconcile.ScheduleFact{PaymentID: id, NextCheckAt: at}})
		return err
	}
	if held, err := leaseA.Try(ctx); !held || err != nil {
		t.Fatalf("A takes the lease: %v %v", held, err)
	}
	atA := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := schedule(busA, atA); err != nil {
		t.Fatal(err)
	}
	if held, _ := leaseB.Try(ctx); held {
		t.Fatal("B took a lease A holds")
	}
	// A stalls (no renewal): the key expires on the bucket's TTL and B takes over.
	poll(t, "B to take the lease once A's expired", func() bool { held, _ := leaseB.Try(ctx); return held })
	if leaseA.Held() {
		t.Fatal("A still believes it holds the lease after the bucket's TTL")
	}
	if leaseB.Term() <= leaseA.Term() {
		t.Fatalf("terms A %d, B %d: a later holder's term must be higher", leaseA.Term(), leaseB.Term())
	}
	atB := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	if err := schedule(busB, atB); err != nil {
		t.Fatal(err)
	}
	// A wakes and publishes what it decided before it stalled: refused.
	err = schedule(busA, time.Now().Add(3*time.Hour).UTC().Truncate(time.Second))
	if !errors.Is(err, reconcile.ErrFactDeadLettered) || !strings.Contains(err.Error(), "stale lease") {
		t.Fatalf("the stale holder's fact: %v", err)
	}
	pay, err := m.Ledger().Payment(ctx, id)
	if err != nil || !pay.NextCheckAt.Equal(atB) {
		t.Fatalf("next check %s (%v), want the new holder's %s", pay.NextCheckAt, err, atB)
	}
	dls, err := m.Ledger().DeadLetters(ctx, true, 10)
	if err != nil || len(dls) != 1 || !strings.Contains(dls[0].Reason, "stale lease") {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	// An operator deletes the lease bucket; made again, its revisions start low, yet its holder's
	// facts apply: terms compare by the bucket's creation first.
	if err := js.DeleteKeyValue(ctx, events.LeaseBucket); err != nil {
		t.Fatal(err)
	}
	if kv, err = events.EnsureLeases(ctx, js, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	leaseC, busC := holder("reconciler-c")
	if held, err := leaseC.Try(ctx); !held || err != nil || leaseC.Term() >= leaseB.Term() {
		t.Fatalf("C on the new bucket: held %v (%v), term %d (B's %d)", held, err, leaseC.Term(), leaseB.Term())
	}
	atC := time.Now().Add(4 * time.Hour).UTC().Truncate(time.Second)
	if err := schedule(busC, atC); err != nil {
		t.Fatalf("the new bucket's holder refused: %v", err)
	}
	// An operator's fact is not the sweep's: no lease needed.
	if _, err := busA.Commit(ctx, reconcile.Fact{Kind: reconcile.FactDiscard, ID: "discard:test", At: time.Now(),
		Operator: &reconcile.OperatorNote{Who: "alice", Note: "stale"}, DeadLetterSeq: dls[0].StreamSeq}); err != nil {
		t.Fatal(err)
	}
	if d, err := m.Ledger().DeadLetter(ctx, dls[0].ID); err != nil || d.DiscardedAt == nil {
		t.Fatalf("discard: %+v %v", d, err)
	}
}
