package reconcile_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/events"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// stuckCounts are the stuck payments as each reader counts them: the gauge, `reconciler stuck`
// and `discrepancies --kind stuck` (the open list), the desk's count and its payments filter.
type stuckCounts struct {
	Gauge, Listed, Counted, Payments int
}

func countStuck(t *testing.T, e *sweepEnv, reg *prometheus.Registry) stuckCounts {
	t.Helper()
	ctx := context.Background()
	var c stuckCounts
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "knetrecon_stuck_payments" {
			c.Gauge = int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	ds, err := e.ledger.Discrepancies(ctx, store.DiscrepancyFilter{Kind: reconcile.KindStuck})
	if err != nil {
		t.Fatal(err)
	}
	_, open, err := e.ledger.OpenCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pays, err := e.ledger.ListPayments(ctx, store.PaymentFilter{Kind: reconcile.KindStuck})
	if err != nil {
		t.Fatal(err)
	}
	c.Listed, c.Counted, c.Payments = len(ds), int(open[reconcile.KindStuck]), len(pays)
	return c
}

// stuckFacts counts the stuck facts the stream holds.
func stuckFacts(t *testing.T, e *sweepEnv) uint64 {
	t.Helper()
	ctx := context.Background()
	s, err := e.road.JS.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	subject := events.FactSubject(reconcile.FactStuck)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// A payment marked stuck and resolved by an operator while it is still open is stuck again at the
// next sweep: its mark reopens (the operator's name and note kept in its history, on the facts'
// clock), the gauge, the stuck list and the counts agree at every step, and the sweep publishes
// no stuck fact while the mark stays open. Once the payment is final the mark resolves and stays
// resolved.
func TestStuckResolvedWhileOpenReopensAtNextSweep(t *testing.T) {
	ctx := context.Background()
	var cfg reconcile.SweepConfig
	e := newSweepEnv(t, func(c *reconcile.SweepConfig) {
		c.VoidPending = false // the payment stays Pending: stuck past 30 minutes
		cfg = *c
	})
	reg := prometheus.NewRegistry()
	e.sweeper = reconcile.NewSweeper(e.ledger, e.road.Facts, e.client, zaptest.NewLogger(t), reconcile.NewSweepMetrics(reg), cfg)
	e.sweeper.Gauges = reconcile.NewGauges(e.ledger, reg)
	agree := func(step string, want int, rep reconcile.Report) {
		t.Helper()
		if got := countStuck(t, e, reg); got != (stuckCounts{want, want, want, want}) || rep.Stuck != want {
			t.Fatalf("%s: report says %d stuck, readers %+v; want %d everywhere", step, rep.Stuck, got, want)
		}
	}

	id := e.newPayment(1_500)
	e.advance(31 * time.Minute)
	rep := e.sweep(false)
	if !slices.Equal(rep.NewStuck, []string{id}) {
		t.Fatalf("at 31m: new stuck %v, want %s", rep.NewStuck, id)
	}
	agree("marked", 1, rep)
	marked, err := e.ledger.Discrepancies(ctx, store.DiscrepancyFilter{Kind: reconcile.KindStuck})
	if err != nil {
		t.Fatal(err)
	}
	mark := marked[0].ID

	// The operator resolves it while the customer is still on the KNET page.
	resolvedAt := e.clock.Now()
	if _, err := e.road.Ops.Resolve(ctx, mark, "alice", "customer called, waiting for KNET"); err != nil {
		t.Fatal(err)
	}
	if c := countStuck(t, e, reg); c.Listed != 0 || c.Counted != 0 || c.Payments != 0 {
		t.Fatalf("after the resolution: %+v, want none stuck", c)
	}

	// Still open at the next sweep: stuck again, the same mark reopened.
	e.advance(10 * time.Minute)
	reopenedAt := e.clock.Now()
	rep = e.sweep(false)
	if !slices.Equal(rep.NewStuck, []string{id}) {
		t.Fatalf("sweep after the resolution: new stuck %v, want %s", rep.NewStuck, id)
	}
	agree("reopened", 1, rep)
	all, err := e.ledger.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: id, Kind: reconcile.KindStuck, All: true})
	if err != nil || len(all) != 1 {
		t.Fatalf("stuck marks of %s: %+v, %v; want one", id, all, err)
	}
	d := all[0]
	if d.ID != mark || d.ResolvedAt != nil || d.Reopened != 1 || len(d.History) != 3 {
		t.Fatalf("the mark after the sweep: %+v", d)
	}
	if h := d.History[1]; h.Event != store.DiscrepancyResolved || h.By != "alice" || !strings.Contains(h.Note, "customer called, waiting for KNET") ||
		!h.At.Equal(resolvedAt) {
		t.Fatalf("kept resolution %+v; want alice's, at %s", h, resolvedAt)
	}
	if h := d.History[2]; h.Event != store.DiscrepancyReopened || !h.At.Equal(reopenedAt) {
		t.Fatalf("reopening %+v; want at the sweep's time %s", h, reopenedAt)
	}

	// Stuck and marked: later sweeps publish no stuck fact, and the count holds.
	facts := stuckFacts(t, e)
	for range 3 {
		e.advance(10 * time.Minute)
		rep = e.sweep(false)
		if len(rep.NewStuck) != 0 {
			t.Fatalf("sweep of a payment marked stuck: new stuck %v", rep.NewStuck)
		}
		agree("still stuck", 1, rep)
	}
	if n := stuckFacts(t, e); n != facts {
		t.Fatalf("%d stuck facts published by sweeps of a payment already marked", n-facts)
	}

	// Final at last: the mark counts nowhere at once, resolves at the next sweep, and stays so.
	if _, err := e.sim.Expire(id); err != nil {
		t.Fatal(err)
	}
	e.idle()
	if c := countStuck(t, e, reg); c.Listed != 0 || c.Counted != 0 || c.Payments != 0 {
		t.Fatalf("a final payment counted stuck: %+v", c)
	}
	rep = e.sweep(false)
	if !slices.Equal(rep.Unstuck, []string{id}) {
		t.Fatalf("unstuck %v, want %s", rep.Unstuck, id)
	}
	agree("final", 0, rep)
	e.advance(time.Hour)
	rep = e.sweep(false)
	agree("final, an hour later", 0, rep)
	if all, err = e.ledger.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: id, Kind: reconcile.KindStuck, All: true}); err != nil ||
		all[0].ResolvedAt == nil || all[0].Resolution != "payment became final" || all[0].Reopened != 1 {
		t.Fatalf("the mark of the final payment: %+v, %v", all, err)
	}
}
