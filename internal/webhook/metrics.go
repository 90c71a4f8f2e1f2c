package webhook

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the receiver's Prometheus series.
type Metrics struct {
	requests          *prometheus.CounterVec
	signatureFailures *prometheus.CounterVec
	quarantined       prometheus.Counter
	publishSeconds    prometheus.Histogram
	inFlight          prometheus.Gauge
}

// NewMetrics creates the receiver's series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_receiver_requests_total",
			Help: "Webhook requests by outcome (stored, duplicate, quarantined, unauthorized, too_large, method_not_allowed, bad_request, unavailable, backlog_full).",
		}, []string{"outcome"}),
		signatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_receiver_signature_failures_total",
			Help: "Requests refused with 401, by reason.",
		}, []string{"reason"}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "knetrecon_receiver_quarantined_total",
			Help: "Authentic bodies whose envelope could not be decoded, stored on checkout.quarantine.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "knetrecon_receiver_publish_seconds",
			Help:    "Time from reading the request to JetStream's acknowledgement (or failure).",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knetrecon_receiver_in_flight",
			Help: "Webhook requests being handled now.",
		}),
	}
	for _, o := range []string{OutcomeStored, OutcomeDuplicate, OutcomeQuarantined, OutcomeUnauthorized, OutcomeTooLarge, OutcomeMethodNotAllowed, OutcomeBadRequest, OutcomeUnavailable, OutcomeBacklogFull} {
		m.requests.WithLabelValues(o)
	}
	for _, r := range []string{ReasonSignatureMissing, ReasonSignatureMalformed, ReasonSignatureMismatch, ReasonAuthorizationMissing, ReasonAuthorizationMismatch} {
		m.signatureFailures.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.signatureFailures, m.quarantined, m.publishSeconds, m.inFlight)
	return m
}
