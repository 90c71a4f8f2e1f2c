package reconcile

import "github.com/prometheus/client_golang/prometheus"

// SweepMetrics are the sweep's Prometheus series. The ledger's open counts the alerts page on
// are Gauges, exported whether or not this reconciler sweeps.
type SweepMetrics struct {
	duration  prometheus.Histogram
	checks    *prometheus.CounterVec
	apiErrors *prometheus.CounterVec
	voids     prometheus.Counter
	alerts    *prometheus.CounterVec
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
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_alerts_total", Help: "Alert webhook deliveries, by result (sent, failed).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.duration, m.checks, m.apiErrors, m.voids, m.alerts)
	return m
}
