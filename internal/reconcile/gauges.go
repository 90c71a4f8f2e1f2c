package reconcile

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// Gauges are the ledger's open counts the alert rules page on: stuck payments, the oldest open
// payment's age, pending dead letters and open discrepancies by kind. They are read from the
// ledger, not from a sweep, so every reconciler exports them whether or not the sweep runs on it
// (KNETRECON_SWEEP_SCHEDULE=off, or another replica holds the lease): Run refreshes them on a
// timer and the sweep after each pass.
type Gauges struct {
	ledger        *store.Ledger
	stuck         prometheus.Gauge
	oldestOpen    prometheus.Gauge
	deadLetters   prometheus.Gauge
	discrepancies *prometheus.GaugeVec

	mu    sync.Mutex
	kinds map[payment.Kind]bool // every kind given a series so far: set to 0, never dropped
}

// NewGauges creates the gauges of ledger and registers them with reg. Every alerted kind has a
// series from the start, 0 until a refresh finds one open.
func NewGauges(ledger *store.Ledger, reg prometheus.Registerer) *Gauges {
	g := &Gauges{
		ledger: ledger,
		stuck: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_stuck_payments", Help: "Payments marked stuck and not yet final (the count `reconciler stuck` lists).",
		}),
		oldestOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_oldest_open_payment_age_seconds", Help: "Age of the oldest payment not yet final (0 when none).",
		}),
		deadLetters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_dead_letters_pending", Help: "Dead letters neither applied by a replay nor discarded.",
		}),
		discrepancies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "knetrecon_open_discrepancies", Help: "Discrepancies not yet resolved, by kind (every alerted kind, 0 when none).",
		}, []string{"kind"}),
		kinds: map[payment.Kind]bool{},
	}
	for _, k := range AlertKinds {
		g.kinds[k] = true
		g.discrepancies.WithLabelValues(string(k)).Set(0)
	}
	reg.MustRegister(g.stuck, g.oldestOpen, g.deadLetters, g.discrepancies)
	return g
}

// Refresh reads the counts from the ledger and sets the gauges; the oldest open payment's age is
// taken at now. A kind whose discrepancies are all resolved keeps its series at 0.
func (g *Gauges) Refresh(ctx context.Context, now time.Time) error {
	dl, open, err := g.ledger.OpenCounts(ctx)
	if err != nil {
		return fmt.Errorf("refresh gauges: %w", err)
	}
	oldest, ok, err := g.ledger.OldestOpen(ctx)
	if err != nil {
		return fmt.Errorf("refresh gauges: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deadLetters.Set(float64(dl))
	g.stuck.Set(float64(open[KindStuck])) // open counts stuck by the rule `reconciler stuck` lists by
	age := 0.0
	if ok {
		age = now.Sub(oldest).Seconds()
	}
	g.oldestOpen.Set(age)
	for k := range open {
		g.kinds[k] = true
	}
	for k := range g.kinds {
		g.discrepancies.WithLabelValues(string(k)).Set(float64(open[k]))
	}
	return nil
}

// Run refreshes the gauges at once and then every interval until ctx ends, with now as the clock.
// A failed refresh is logged and the gauges keep their last values.
func (g *Gauges) Run(ctx context.Context, every time.Duration, now func() time.Time, log *zap.Logger) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := g.Refresh(ctx, now()); err != nil && ctx.Err() == nil {
			log.Warn("gauges not refreshed", zap.Error(err))
		}
		t.Reset(every)
	}
}
