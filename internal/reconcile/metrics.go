package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"

	"knetrecon/internal/payment"
)

// Metrics are the reconciler's Prometheus series.
type Metrics struct {
	applied       *prometheus.CounterVec
	duplicates    prometheus.Counter
	discrepancies *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	naks          prometheus.Counter
	ledgerFailing prometheus.Gauge
	ledgerRetries prometheus.Counter
	lagMessages   prometheus.Gauge
	lagSeconds    prometheus.Gauge
	applySeconds  prometheus.Histogram
	batchSize     prometheus.Histogram
	gapMessages   prometheus.Gauge
	gapLost       prometheus.Gauge
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_reconciler_events_total",
			Help: "Events handled, by event type (other for types the rules do not know) and outcome (applied, no_change, held, already_posted, recorded, rejected, ignored, duplicate, conflict).",
		}, []string{"type", "outcome"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "knetrecon_reconciler_duplicates_total",
			Help: "Events already in the ledger with the same body (redeliveries).",
		}),
		discrepancies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_reconciler_discrepancies_total",
			Help: "Discrepancies recorded, by kind.",
		}, []string{"kind"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_reconciler_dead_letters_total",
			Help: "Messages dead-lettered, by cause (quarantined, undecodable, invalid, panic, forged).",
		}, []string{"cause"}),
		naks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "knetrecon_reconciler_naks_total",
			Help: "Messages handed back for redelivery: a batch not applied when the reconciler stopped.",
		}),
		ledgerFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_reconciler_ledger_failing",
			Help: "1 while the ledger refuses writes and a batch is held and retried (busy, locked, disk full, I/O error).",
		}),
		ledgerRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "knetrecon_reconciler_ledger_retries_total",
			Help: "Attempts at a held batch after the ledger refused it.",
		}),
		lagMessages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_reconciler_consumer_lag_messages",
			Help: "Messages in the stream not yet applied by this reconciler (not delivered, or delivered and not acked), read from the server every 15 s.",
		}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_reconciler_consumer_lag_seconds",
			Help: "Age of the oldest message not yet applied (0 when caught up), read from the server every 15 s.",
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "knetrecon_reconciler_apply_seconds",
			Help:    "Time to apply and commit one batch.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "knetrecon_reconciler_batch_size",
			Help:    "Messages per batch.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
		}),
	}
	for _, k := range []payment.Kind{payment.KindCapturedAfterExpiry, payment.KindDisallowedTransition, payment.KindOverRefund,
		payment.KindAmountMismatch, payment.KindConflictingDuplicate, payment.KindCurrencyMismatch} {
		m.discrepancies.WithLabelValues(string(k))
	}
	for _, c := range []string{causeQuarantined, causeUndecodable, causeInvalid, causePanic, causeForged, causeStaleLease} {
		m.deadLetters.WithLabelValues(c)
	}
	m.gapMessages = prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_reconciler_ledger_gap_messages",
		Help: "Messages the durable consumer acked that the ledger lacks (a power cut undid their commit), not yet applied again from the stream."})
	m.gapLost = prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_reconciler_ledger_gap_lost_messages",
		Help: "Messages the durable consumer acked that the ledger lacks and the stream no longer holds: the ledger needs a rebuild from a backup."})
	reg.MustRegister(m.applied, m.duplicates, m.discrepancies, m.deadLetters, m.naks, m.ledgerFailing, m.ledgerRetries, m.lagMessages,
		m.lagSeconds, m.applySeconds, m.batchSize, m.gapMessages, m.gapLost)
	return m
}
