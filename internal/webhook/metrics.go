package webhook

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the receiver's Prometheus series.
type Metrics struct {
	requests          *prometheus.CounterVec
	signatureFailures *prometheus.CounterVec
	quarantined       prometheus.Counter
	publishSeconds    prometheus.Histogram
	inFlight          prometheus.Gauge
	verified          *prometheus.CounterVec
	reloads           *prometheus.CounterVec
}

// Reloaded counts a reload of the keys (ok false: refused, the keys in use kept).
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("error").Inc()
	}
}

// NewMetrics creates the receiver's series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_receiver_requests_total",
			Help: "Webhook requests by outcome (stored, duplicate, quarantined, unauthorized, too_large, method_not_allowed, bad_request, unavailable, backlog_full, store_failing).",
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
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_receiver_verified_total",
			Help: "Webhooks whose signature verified, by key fingerprint (k- and the first 8 hex digits of the key's SHA-256): during a rotation, shows when the old key stops being used.",
		}, []string{"key"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knetrecon_receiver_key_reloads_total",
			Help: "Reloads of the webhook keys (SIGHUP or a changed key file), by result (ok, error: the keys in use were kept).",
		}, []string{"result"}),
	}
	for _, o := range []string{OutcomeStored, OutcomeDuplicate, OutcomeQuarantined, OutcomeUnauthorized, OutcomeTooLarge, OutcomeMethodNotAllowed, OutcomeBadRequest, OutcomeUnavailable, OutcomeBacklogFull, OutcomeStoreFailing} {
		m.requests.WithLabelValues(o)
	}
	for _, r := range []string{ReasonSignatureMissing, ReasonSignatureMalformed, ReasonSignatureMismatch, ReasonAuthorizationMissing, ReasonAuthorizationMismatch} {
		m.signatureFailures.WithLabelValues(r)
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	reg.MustRegister(m.requests, m.signatureFailures, m.quarantined, m.publishSeconds, m.inFlight, m.verified, m.reloads)
	return m
}
