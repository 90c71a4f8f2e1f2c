package reconcile

import "github.com/prometheus/client_golang/prometheus"

// SweepMetrics are the sweep's Prometheus series.
type SweepMetrics struct {
	duration      prometheus.Histogram
	checks        *prometheus.CounterVec
	apiErrors     *prometheus.CounterVec
	voids         prometheus.Counter
	stuck         prometheus.Gauge
	oldestOpen    prometheus.Gauge
	alerts        *prometheus.CounterVec
	deadLetters   prometheus.Gauge
	discrepancies *prometheus.GaugeVec
}

// NewSweepMetrics creates the sweep's series and registers them with reg.
func NewSweepMetrics(reg prometheus.Registerer) *SweepMetrics {
	m := &SweepMetrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "knetrecon_sweep_duration_seconds", Help: "Duration of each sweep.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_sweep_checks_total", Help: "Payments checked by the sweep, by outcome.",
		}, []string{"outcome"}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_checkout_api_errors_total", Help: "Checkout.com API calls that failed after retries, by HTTP status (or network).",
		}, []string{"status"}),
		voids: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "knetrecon_sweep_voids_total", Help: "Voids the sweep asked Checkout.com for.",
		}),
		stuck: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_stuck_payments", Help: "Payments marked stuck and not yet final.",
		}),
		oldestOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_oldest_open_payment_age_seconds", Help: "Age of the oldest payment not yet final (0 when none).",
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_alerts_total", Help: "Alert webhook deliveries, by result (sent, failed).",
		}, []string{"result"}),
	}
	m.deadLetters = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "knetrecon_dead_letters_pending", Help: "Dead letters not yet replayed (refreshed every sweep).",
	})
	m.discrepancies = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "knetrecon_open_discrepancies", Help: "Discrepancies not yet resolved, by kind (refreshed every sweep).",
	}, []string{"kind"})
	reg.MustRegister(m.duration, m.checks, m.apiErrors, m.voids, m.stuck, m.oldestOpen, m.alerts, m.deadLetters, m.discrepancies)
	return m
}
