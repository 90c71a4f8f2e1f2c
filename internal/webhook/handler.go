// Package webhook is the receiving end of Checkout.com's webhooks: size limit, signature,
// Authorization, envelope, publish, answer — in that order, one straight road. It sits beside
// internal/reconcile in the house: it joins internal/checkout (what a webhook is) to
// internal/events (where it is stored), and cmd/receiver only wires it up.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
)

// Outcomes of a webhook request, as logged and counted.
const (
	OutcomeStored           = "stored"
	OutcomeDuplicate        = "duplicate"
	OutcomeQuarantined      = "quarantined"
	OutcomeUnauthorized     = "unauthorized"
	OutcomeTooLarge         = "too_large"
	OutcomeMethodNotAllowed = "method_not_allowed"
	OutcomeBadRequest       = "bad_request"
	OutcomeUnavailable      = "unavailable"
	OutcomeBacklogFull      = "backlog_full"
	OutcomeStoreFailing     = "store_failing"
)

// msgOverhead is what a stream message adds to its body (subject, headers, record): the guard
// counts it with the body.
const msgOverhead = 256

// Reasons an unauthenticated request is refused, as counted.
const (
	ReasonSignatureMissing      = "signature_missing"
	ReasonSignatureMalformed    = "signature_malformed"
	ReasonSignatureMismatch     = "signature_mismatch"
	ReasonAuthorizationMissing  = "authorization_missing"
	ReasonAuthorizationMismatch = "authorization_mismatch"
)

// Handler receives Checkout.com webhooks. A 2xx means the body is stored in JetStream; every
// failure answers non-2xx so that Checkout.com retries.
type Handler struct {
	// auth holds the keys and the Authorization value; SetKeys swaps them without a restart.
	auth           atomic.Pointer[credentials]
	publisher      *events.Publisher
	admit          func(int) bool
	store          *events.StoreCircuit
	sync           func(context.Context) error
	maxBody        int64
	publishTimeout time.Duration
	retryAfter     string
	now            func() time.Time
	log            *zap.Logger
	metrics        *Metrics
	bufs           sync.Pool

	// failingSince is when publishes started failing without a success since (unix ns; 0: not).
	failingSince atomic.Int64
}

// FailingFor says how long every publish has failed, with no success since (0: intake works).
func (h *Handler) FailingFor(now time.Time) time.Duration {
	since := h.failingSince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}

// StoreRecovered forgets the failing publishes: the store takes writes again (the StoreCircuit
// closed), so intake works until a publish says otherwise.
func (h *Handler) StoreRecovered() { h.failingSince.Store(0) }

// Config configures a Handler.
type Config struct {
	// Keys verify Cko-Signature. Required.
	Keys *checkout.KeyRing
	// Authorization, when not empty, must equal the request's Authorization header.
	Authorization string
	// Publisher stores the webhooks. Required.
	Publisher *events.Publisher
	// Admit, when set, says whether a message of n bytes may be stored now; when it says no the
	// answer is 503 (the stream's unapplied backlog is near its limit).
	Admit func(n int) bool
	// Store, when set, refuses webhooks at once (503) while the NATS store refuses writes, and
	// hears of every failed publish.
	Store *events.StoreCircuit
	// Sync, when set, returns once what JetStream acknowledged is on disk; the 2xx waits for it.
	Sync func(context.Context) error
	// MaxBodyBytes is the largest body accepted; larger ones get 413.
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for JetStream's acknowledgement; past it the answer is 503.
	// Keep it well under Checkout.com's 10 s.
	PublishTimeout time.Duration
	// RetryAfter is sent with a 503.
	RetryAfter time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives one line per request. Required.
	Log *zap.Logger
	// Metrics counts requests. Required.
	Metrics *Metrics
}

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 3 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	h := &Handler{
		publisher:      cfg.Publisher,
		admit:          cfg.Admit,
		store:          cfg.Store,
		sync:           cfg.Sync,
		maxBody:        cfg.MaxBodyBytes,
		publishTimeout: cfg.PublishTimeout,
		retryAfter:     strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
		now:            cfg.Now,
		log:            cfg.Log,
		metrics:        cfg.Metrics,
		bufs:           sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
	h.SetKeys(cfg.Keys, cfg.Authorization)
	return h
}

// credentials are what a request is verified with.
type credentials struct {
	keys          *checkout.KeyRing
	authorization string
}

// SetKeys replaces the webhook keys and the Authorization value; requests in flight finish with
// the ones they started with. The receiver calls it on SIGHUP and when the key file changes.
func (h *Handler) SetKeys(keys *checkout.KeyRing, authorization string) {
	h.auth.Store(&credentials{keys: keys, authorization: authorization})
}

// ServeHTTP handles one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	h.metrics.inFlight.Inc()
	defer h.metrics.inFlight.Dec()

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.finish(w, start, http.StatusMethodNotAllowed, OutcomeMethodNotAllowed, zap.String("method", r.Method))
		return
	}
	if r.ContentLength > h.maxBody {
		h.finish(w, start, http.StatusRequestEntityTooLarge, OutcomeTooLarge, zap.Int64("content_length", r.ContentLength))
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.bufs.Put(buf)
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.finish(w, start, http.StatusRequestEntityTooLarge, OutcomeTooLarge, zap.Int64("limit", h.maxBody))
			return
		}
		h.finish(w, start, http.StatusBadRequest, OutcomeBadRequest, zap.String("reason", "body unreadable"), zap.Error(err))
		return
	}
	body := buf.Bytes()

	signature := r.Header.Get(checkout.SignatureHeader)
	auth := h.auth.Load()
	key, err := auth.keys.Match(body, signature)
	keyName := key.Name
	if err != nil {
		h.unauthorized(w, start, signatureReason(err))
		return
	}
	if auth.authorization != "" {
		got := r.Header.Get("Authorization")
		if got == "" {
			h.unauthorized(w, start, ReasonAuthorizationMissing)
			return
		}
		if !checkout.AuthorizationMatches(got, auth.authorization) {
			h.unauthorized(w, start, ReasonAuthorizationMismatch)
			return
		}
	}

	h.metrics.verified.WithLabelValues(key.Fingerprint()).Inc()
	msg := &events.Webhook{Body: body, KeyName: keyName, Signature: signature, ReceivedAt: start}
	head, err := checkout.DecodeHead(body)
	if err != nil {
		// Authentic but undecodable: keep it where an operator can fix the decoder and replay it.
		msg.QuarantineReason = err.Error()
	} else {
		msg.EventID, msg.EventType = head.ID, head.Type
	}

	if h.store != nil {
		if failing, reason := h.store.Failing(); failing {
			// Waiting for a publish timeout would tell Checkout.com nothing more.
			w.Header().Set("Retry-After", h.retryAfter)
			h.finish(w, start, http.StatusServiceUnavailable, OutcomeStoreFailing, zap.String("event_id", msg.EventID),
				zap.String("event_type", msg.EventType), zap.String("reason", reason))
			return
		}
	}
	if h.admit != nil && !h.admit(len(body)+msgOverhead) {
		// The stream holds only messages the ledger has not applied, and they fill the limit.
		w.Header().Set("Retry-After", h.retryAfter)
		h.finish(w, start, http.StatusServiceUnavailable, OutcomeBacklogFull, zap.String("event_id", msg.EventID),
			zap.String("event_type", msg.EventType), zap.String("reason", "the stream's unapplied backlog is at KNETRECON_STREAM_BACKLOG_LIMIT"))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.publishTimeout)
	if h.store != nil {
		// A publish waiting on a store that has just failed gives up at once.
		var unbind func()
		ctx, unbind = h.store.Bind(ctx)
		defer unbind()
	}
	stored, err := h.publisher.Publish(ctx, msg)
	if err == nil && h.sync != nil {
		// A duplicate too: its first copy may have been stored a moment ago and not synced yet.
		if serr := h.sync(ctx); serr != nil {
			err = fmt.Errorf("stored but not synced to disk: %w", serr)
		}
	}
	if err != nil && context.Cause(ctx) == events.ErrStoreFailing {
		err = fmt.Errorf("%w (%w)", events.ErrStoreFailing, err)
	}
	cancel()
	h.metrics.publishSeconds.Observe(h.now().Sub(start).Seconds())
	fields := []zap.Field{zap.String("event_id", msg.EventID), zap.String("event_type", msg.EventType), zap.String("key", keyName)}
	if err != nil {
		w.Header().Set("Retry-After", h.retryAfter)
		switch {
		case errors.Is(err, events.ErrStreamFull):
			// Storing it would need a message the ledger has not applied yet to go: it cannot.
			h.finish(w, start, http.StatusServiceUnavailable, OutcomeBacklogFull, append(fields, zap.Error(err))...)
			return
		case h.store != nil:
			h.store.Report(err)
		}
		h.failingSince.CompareAndSwap(0, start.UnixNano())
		outcome := OutcomeUnavailable
		if events.IsStoreFailure(err) {
			outcome = OutcomeStoreFailing
		}
		h.finish(w, start, http.StatusServiceUnavailable, outcome, append(fields, zap.Error(err))...)
		return
	}
	if h.failingSince.Load() != 0 {
		h.failingSince.Store(0)
	}
	fields = append(fields, zap.Uint64("seq", stored.Seq))
	switch {
	case msg.QuarantineReason != "":
		h.metrics.quarantined.Inc()
		h.finish(w, start, http.StatusOK, OutcomeQuarantined, append(fields, zap.String("msg_id", msg.MsgID()), zap.String("reason", msg.QuarantineReason))...)
	case stored.Duplicate:
		h.finish(w, start, http.StatusOK, OutcomeDuplicate, fields...)
	default:
		h.finish(w, start, http.StatusOK, OutcomeStored, fields...)
	}
}

func (h *Handler) unauthorized(w http.ResponseWriter, start time.Time, reason string) {
	h.metrics.signatureFailures.WithLabelValues(reason).Inc()
	h.finish(w, start, http.StatusUnauthorized, OutcomeUnauthorized, zap.String("reason", reason))
}

// finish answers, counts and logs the request: one line per request, never the body.
func (h *Handler) finish(w http.ResponseWriter, start time.Time, status int, outcome string, fields ...zap.Field) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"outcome":"`+outcome+`"}`+"\n")
	h.metrics.requests.WithLabelValues(outcome).Inc()
	fields = append(fields, zap.String("outcome", outcome), zap.Int("status", status), zap.Duration("latency", h.now().Sub(start)))
	switch {
	case status >= 500:
		h.log.Warn("webhook not stored", fields...)
	case status >= 400:
		h.log.Info("webhook refused", fields...)
	default:
		h.log.Info("webhook", fields...)
	}
}

func signatureReason(err error) string {
	switch {
	case errors.Is(err, checkout.ErrSignatureMissing):
		return ReasonSignatureMissing
	case errors.Is(err, checkout.ErrSignatureMalformed):
		return ReasonSignatureMalformed
	default:
		return ReasonSignatureMismatch
	}
}
