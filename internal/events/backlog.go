package events

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Backlog is how much of the stream is not applied yet: what lies after the ack floor of the
// slowest durable consumer (every message, when there is none).
//
// The stream discards its oldest messages once MaxBytes is reached (DiscardOld), so messages
// already applied never block intake. Messages not yet applied must never be discarded: the
// receiver refuses new webhooks (503, Checkout.com retries) while the backlog is near MaxBytes.
type Backlog struct {
	// Bytes and Msgs are the stream's size now; MaxBytes its limit (-1: none).
	Bytes, Msgs uint64
	MaxBytes    int64
	// FirstSeq and LastSeq bound the messages the stream holds.
	FirstSeq, LastSeq uint64
	// Consumers counts the durable consumers with explicit acks (the ledgers).
	Consumers int
	// Floor is the slowest durable consumer's ack floor (stream sequence): every message up to it
	// is applied.
	Floor uint64
	// UnappliedMsgs counts the messages after Floor; UnappliedBytes estimates their size from the
	// stream's mean message size.
	UnappliedMsgs, UnappliedBytes uint64
}

// ReadBacklog reads the stream's state and its durable consumers' ack floors. Ephemeral and
// ordered consumers (replays) do not hold messages and are left out.
func ReadBacklog(ctx context.Context, js jetstream.JetStream) (Backlog, error) {
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		return Backlog{}, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return Backlog{}, fmt.Errorf("stream %s info: %w", StreamName, err)
	}
	st := info.State
	b := Backlog{Bytes: st.Bytes, Msgs: st.Msgs, MaxBytes: info.Config.MaxBytes, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq}
	floor := uint64(0)
	lister := s.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" || ci.Config.AckPolicy != jetstream.AckExplicitPolicy {
			continue
		}
		if b.Consumers == 0 || ci.AckFloor.Stream < floor {
			floor = ci.AckFloor.Stream
		}
		b.Consumers++
	}
	if err := lister.Err(); err != nil {
		return Backlog{}, fmt.Errorf("consumers of %s: %w", StreamName, err)
	}
	b.Floor = floor
	if st.Msgs == 0 || st.LastSeq == 0 {
		return b, nil
	}
	from := max(floor+1, st.FirstSeq)
	if from <= st.LastSeq {
		b.UnappliedMsgs = min(st.LastSeq-from+1, st.Msgs)
	}
	b.UnappliedBytes = st.Bytes / st.Msgs * b.UnappliedMsgs
	return b, nil
}

// Guard keeps the receiver from letting the stream discard what is not applied yet: it reads
// the backlog every Every and admits a webhook only while the backlog, plus what was admitted
// since the last reading, stays under Limit (a fraction of the stream's MaxBytes).
type Guard struct {
	js    jetstream.JetStream
	limit float64
	every time.Duration

	unapplied atomic.Int64 // bytes, at the last reading
	since     atomic.Int64 // bytes admitted since the last reading
	maxBytes  atomic.Int64 // the stream's MaxBytes at the last reading; <= 0 admits everything

	streamBytes, unappliedBytes, unappliedMsgs, maxBytesGauge, consumers prometheus.Gauge
}

// NewGuard returns a Guard over js refusing at limit (0 < limit < 1) of the stream's MaxBytes,
// reading the backlog every every. Its gauges are registered with reg.
func NewGuard(js jetstream.JetStream, limit float64, every time.Duration, reg prometheus.Registerer) *Guard {
	g := &Guard{js: js, limit: limit, every: every,
		streamBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_bytes",
			Help: "Size of the stream CHECKOUT_EVENTS (applied and unapplied messages)."}),
		maxBytesGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_max_bytes",
			Help: "The stream's MaxBytes (KNETRECON_STREAM_MAX_BYTES); -1 without a limit."}),
		unappliedBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_unapplied_bytes",
			Help: "Estimated bytes of the messages after the slowest durable consumer's ack floor: what the ledger has not applied yet."}),
		unappliedMsgs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_unapplied_messages",
			Help: "Messages after the slowest durable consumer's ack floor."}),
		consumers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_durable_consumers",
			Help: "Durable consumers (ledgers) whose ack floor holds the backlog."}),
	}
	reg.MustRegister(g.streamBytes, g.maxBytesGauge, g.unappliedBytes, g.unappliedMsgs, g.consumers)
	return g
}

// Refresh reads the backlog once.
func (g *Guard) Refresh(ctx context.Context) (Backlog, error) {
	b, err := ReadBacklog(ctx, g.js)
	if err != nil {
		return b, err
	}
	g.unapplied.Store(int64(b.UnappliedBytes))
	g.since.Store(0)
	g.maxBytes.Store(b.MaxBytes)
	g.streamBytes.Set(float64(b.Bytes))
	g.maxBytesGauge.Set(float64(b.MaxBytes))
	g.unappliedBytes.Set(float64(b.UnappliedBytes))
	g.unappliedMsgs.Set(float64(b.UnappliedMsgs))
	g.consumers.Set(float64(b.Consumers))
	return b, nil
}

// Run refreshes the backlog every Every until ctx ends; a failed reading keeps the last one
// (while NATS is down, publishes fail anyway). onErr, when set, hears of failures.
func (g *Guard) Run(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, max(g.every, 2*time.Second))
		_, err := g.Refresh(rctx)
		cancel()
		if err != nil && onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
	}
}

// Admit reports whether a webhook of n bytes may be stored: the unapplied backlog, with what was
// admitted since the last reading and n, stays under the limit. A refused webhook is not counted.
func (g *Guard) Admit(n int) bool {
	maxBytes := g.maxBytes.Load()
	if maxBytes <= 0 {
		return true
	}
	after := g.unapplied.Load() + g.since.Add(int64(n))
	if float64(after) < g.limit*float64(maxBytes) {
		return true
	}
	g.since.Add(-int64(n))
	return false
}
