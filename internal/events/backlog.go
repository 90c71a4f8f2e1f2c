package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Backlog is the stream's state against its ledgers: the messages at or below the slowest
// durable consumer's ack floor are applied (history the stream may give up to make room), the
// ones after it are not (every message, when there is no durable consumer).
//
// The stream refuses what does not fit under MaxBytes (DiscardNew), so JetStream itself never
// discards a message to make room; Room gives up applied history instead, never a message after
// the floor. What can still remove an unapplied message is MaxAge (a ledger down for longer), an
// operator's purge or a stream configured by hand: Lost says when that happened.
type Backlog struct {
	// Bytes and Msgs are the stream's size now; MaxBytes its limit (-1: none).
	Bytes, Msgs uint64
	MaxBytes    int64
	// DiscardNew reports that the stream refuses new messages when full (the configuration
	// EnsureStream sets), rather than discarding its oldest ones.
	DiscardNew bool
	// FirstSeq and LastSeq bound the messages the stream holds.
	FirstSeq, LastSeq uint64
	// Consumers counts the durable consumers with explicit acks (the ledgers).
	Consumers int
	// Floor is the slowest durable consumer's ack floor (stream sequence): every message up to it
	// is applied.
	Floor uint64
	// AppliedMsgs counts the messages the stream still holds at or below Floor: the history Room
	// can give up.
	AppliedMsgs uint64
	// UnappliedMsgs counts the messages after Floor. UnappliedBytes is their size: exact when the
	// stream holds no applied message (it is then the stream's Bytes, which is when it matters:
	// Room gives up applied history first whenever the stream nears MaxBytes), estimated from the
	// stream's mean message size otherwise.
	UnappliedMsgs, UnappliedBytes uint64
	// Lost lists the durable consumers whose ack floor the stream's first sequence has passed:
	// messages they had not acked were removed.
	Lost []LostRange
}

// LostRange is a durable consumer that lost messages: the stream starts at FirstSeq while the
// consumer had acked only up to Floor, so sequences Floor+1 to FirstSeq-1 were removed before
// its ledger applied them.
type LostRange struct {
	Consumer        string
	Floor, FirstSeq uint64
}

// Msgs is how many sequences were removed unapplied.
func (l LostRange) Msgs() uint64 { return l.FirstSeq - 1 - l.Floor }

// ReadBacklog reads the stream's state and its durable consumers' ack floors. Ephemeral and
// ordered consumers (replays) do not hold messages and are left out.
func ReadBacklog(ctx context.Context, js jetstream.JetStream) (Backlog, error) {
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		return Backlog{}, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	return readBacklog(ctx, s)
}

func readBacklog(ctx context.Context, s jetstream.Stream) (Backlog, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return Backlog{}, fmt.Errorf("stream %s info: %w", StreamName, err)
	}
	st := info.State
	b := Backlog{Bytes: st.Bytes, Msgs: st.Msgs, MaxBytes: info.Config.MaxBytes, DiscardNew: info.Config.Discard == jetstream.DiscardNew,
		FirstSeq: st.FirstSeq, LastSeq: st.LastSeq}
	floor := uint64(0)
	lister := s.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" || ci.Config.AckPolicy != jetstream.AckExplicitPolicy {
			continue
		}
		f := ci.AckFloor.Stream
		if b.Consumers == 0 || f < floor {
			floor = f
		}
		b.Consumers++
		if st.FirstSeq > f+1 {
			b.Lost = append(b.Lost, LostRange{Consumer: ci.Name, Floor: f, FirstSeq: st.FirstSeq})
		}
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
	b.AppliedMsgs = st.Msgs - b.UnappliedMsgs
	switch {
	case b.AppliedMsgs == 0:
		b.UnappliedBytes = st.Bytes
	case b.UnappliedMsgs > 0:
		b.UnappliedBytes = uint64(float64(st.Bytes) * float64(b.UnappliedMsgs) / float64(st.Msgs))
	}
	return b, nil
}

// Room makes room in the stream for new messages by giving up its oldest applied ones: those at
// or below the slowest durable consumer's ack floor, never one after it. The stream refuses what
// does not fit (DiscardNew), so history never makes room by itself; Room is how it does.
//
// Any number of receivers and reconcilers may make room at once: each purges only below the
// floor it has just read, and a floor never moves back, so none can remove what a ledger still
// needs.
type Room struct {
	js     jetstream.JetStream
	mu     sync.Mutex // one purge at a time in this process; a burst of refusals makes room once
	purged atomic.Uint64
}

// NewRoom returns a Room over js's stream.
func NewRoom(js jetstream.JetStream) *Room { return &Room{js: js} }

// Purged counts the applied messages this Room gave up so far.
func (r *Room) Purged() uint64 { return r.purged.Load() }

// roomRounds bounds Make's purges: each one reads the stream again, so mixed message sizes only
// cost a round more, never a message too many past the floor.
const roomRounds = 10

// Make gives up the oldest applied messages until want bytes are free under MaxBytes, or no
// applied message is left. It returns the backlog as it left it and whether want bytes are free
// (always, for a stream without MaxBytes).
func (r *Room) Make(ctx context.Context, want int64) (Backlog, bool, error) {
	return r.makeRoom(ctx, func(Backlog) int64 { return want }, func(b Backlog) bool { return b.MaxBytes-int64(b.Bytes) >= want })
}

// Fit makes room for a message of n bytes, the stream's refusal of which was just heard: it
// gives up applied history until n bytes and some more are free, so that the next messages do not
// each purge: 2 % of MaxBytes, or on a small stream room for 64 such messages (at most an eighth of
// it). It reports whether n bytes are free.
func (r *Room) Fit(ctx context.Context, n int64) (Backlog, bool, error) {
	want := func(b Backlog) int64 { return n + max(b.MaxBytes/50, min(b.MaxBytes/8, 64*n)) }
	return r.makeRoom(ctx, want, func(b Backlog) bool { return b.MaxBytes-int64(b.Bytes) >= n })
}

func (r *Room) makeRoom(ctx context.Context, wantOf func(Backlog) int64, fits func(Backlog) bool) (Backlog, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.js.Stream(ctx, StreamName)
	if err != nil {
		return Backlog{}, false, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	for round := 0; ; round++ {
		b, err := readBacklog(ctx, s)
		if err != nil {
			return b, false, err
		}
		want, free := wantOf(b), b.MaxBytes-int64(b.Bytes)
		if b.MaxBytes <= 0 || free >= want {
			return b, true, nil
		}
		if b.AppliedMsgs == 0 || round == roomRounds {
			return b, fits(b), nil
		}
		// As many of the oldest messages as the deficit holds at the mean size, doubled each round
		// (the oldest may be smaller than the mean), and never past the floor.
		mean := max(int64(b.Bytes/b.Msgs), 1)
		n := uint64((want-free+mean-1)/mean) << round
		upTo := min(b.FirstSeq+n, b.Floor+1)
		if err := s.Purge(ctx, jetstream.WithPurgeSequence(upTo)); err != nil {
			return b, false, fmt.Errorf("purge applied messages below seq %d of %s: %w", upTo, StreamName, err)
		}
		r.purged.Add(upTo - b.FirstSeq)
	}
}

// ErrDiscardOld means the stream discards its oldest messages when full, whether applied or
// not (a stream configured by hand, or by an older release): EnsureStream sets DiscardNew.
var ErrDiscardOld = errors.New("stream " + StreamName + " discards its oldest messages when full (DiscardOld): an unapplied message could be lost; restart the receiver (EnsureStream sets DiscardNew)")

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Limit is the fraction of MaxBytes (0 < Limit < 1) that unapplied messages may fill before
	// webhooks are refused; the rest stays free for the reconcilers' facts.
	Limit float64
	// Every is how often the stream is read.
	Every time.Duration
	// OnError, when set, hears of failed readings, of a failed purge and of a stream that
	// discards old messages (ErrDiscardOld).
	OnError func(error)
	// OnLost, when set, hears of every consumer found to have lost unapplied messages (once per
	// new loss).
	OnLost func(LostRange)
}

// Guard keeps the stream's room for the receiver. Every Every it reads the stream: it gives up
// applied history when the stream nears MaxBytes (Room), exports the backlog, and reports any
// durable consumer whose unapplied messages were removed (a loud alarm: it must never happen).
//
// Admit refuses webhooks early, while the stream holds only unapplied messages and they fill
// Limit of MaxBytes; it counts the stream's real bytes (every receiver's) at the last reading,
// plus what this receiver let in since. It is not what keeps unapplied messages safe: JetStream
// refuses any message that does not fit (DiscardNew), and the Publisher makes room from applied
// history or answers ErrStreamFull.
type Guard struct {
	room *Room
	cfg  GuardConfig

	bytes    atomic.Int64 // the stream's bytes at the last reading
	applied  atomic.Int64 // applied messages the stream held at the last reading
	since    atomic.Int64 // bytes admitted since the last reading
	maxBytes atomic.Int64 // the stream's MaxBytes at the last reading; <= 0 admits everything

	mu         sync.Mutex
	reported   map[string]uint64 // consumer → first sequence up to which its loss was reported
	discardOld bool

	streamBytes, unappliedBytes, unappliedMsgs, appliedMsgs, maxBytesGauge, consumers, lostMsgs prometheus.Gauge
	lostTotal                                                                                   prometheus.Counter
}

// NewGuard returns a Guard making room through room. Its series are registered with reg.
func NewGuard(room *Room, cfg GuardConfig, reg prometheus.Registerer) *Guard {
	g := &Guard{room: room, cfg: cfg, reported: map[string]uint64{},
		streamBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_bytes",
			Help: "Size of the stream CHECKOUT_EVENTS (applied and unapplied messages)."}),
		maxBytesGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_max_bytes",
			Help: "The stream's MaxBytes (KNETRECON_STREAM_MAX_BYTES); -1 without a limit."}),
		unappliedBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_unapplied_bytes",
			Help: "Bytes of the messages after the slowest durable consumer's ack floor: what the ledger has not applied yet. Exact once the stream holds no applied history (applied history is given up first when the stream nears its limit); estimated from the mean message size before."}),
		unappliedMsgs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_unapplied_messages",
			Help: "Messages after the slowest durable consumer's ack floor."}),
		appliedMsgs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_applied_messages",
			Help: "Messages at or below the slowest durable consumer's ack floor the stream still holds: history the receiver gives up, oldest first, to make room."}),
		consumers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_durable_consumers",
			Help: "Durable consumers (ledgers) whose ack floor holds the backlog."}),
		lostMsgs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_stream_lost_unapplied_messages",
			Help: "Messages removed from the stream before a durable consumer acked them (the stream's first sequence is past its ack floor), at the last reading. Must be 0."}),
		lostTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "knetrecon_stream_lost_unapplied_messages_total",
			Help: "Messages found removed from the stream before a durable consumer acked them, since the receiver started. Must stay 0."}),
	}
	purged := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "knetrecon_stream_room_purged_messages_total",
		Help: "Applied messages (at or below the slowest ack floor) this receiver gave up, oldest first, to make room in the stream."},
		func() float64 { return float64(room.Purged()) })
	reg.MustRegister(g.streamBytes, g.maxBytesGauge, g.unappliedBytes, g.unappliedMsgs, g.appliedMsgs, g.consumers, g.lostMsgs, g.lostTotal, purged)
	return g
}

// Refresh reads the stream once, gives up applied history if the stream is within 2.5 % of
// MaxBytes (down to 5 % free), and reports losses.
func (g *Guard) Refresh(ctx context.Context) (Backlog, error) {
	b, err := ReadBacklog(ctx, g.room.js)
	if err != nil {
		return b, err
	}
	g.notice(b)
	if b.MaxBytes > 0 && b.AppliedMsgs > 0 && b.MaxBytes-int64(b.Bytes) < b.MaxBytes/40 {
		nb, _, err := g.room.Make(ctx, b.MaxBytes/20)
		if err != nil {
			g.report(fmt.Errorf("make room in the stream: %w", err))
		} else {
			b = nb
		}
	}
	g.bytes.Store(int64(b.Bytes))
	g.applied.Store(int64(b.AppliedMsgs))
	g.since.Store(0)
	g.maxBytes.Store(b.MaxBytes)
	g.streamBytes.Set(float64(b.Bytes))
	g.maxBytesGauge.Set(float64(b.MaxBytes))
	g.unappliedBytes.Set(float64(b.UnappliedBytes))
	g.unappliedMsgs.Set(float64(b.UnappliedMsgs))
	g.appliedMsgs.Set(float64(b.AppliedMsgs))
	g.consumers.Set(float64(b.Consumers))
	return b, nil
}

// notice counts and reports new losses, and a stream that discards old messages.
func (g *Guard) notice(b Backlog) {
	g.mu.Lock()
	var lost uint64
	var fresh []LostRange
	for _, l := range b.Lost {
		lost += l.Msgs()
		seen := max(g.reported[l.Consumer], l.Floor+1)
		if l.FirstSeq > seen {
			g.lostTotal.Add(float64(l.FirstSeq - seen))
			g.reported[l.Consumer] = l.FirstSeq
			fresh = append(fresh, l)
		}
	}
	discardOld := !b.DiscardNew && b.MaxBytes > 0
	warn := discardOld && !g.discardOld
	g.discardOld = discardOld
	g.mu.Unlock()
	g.lostMsgs.Set(float64(lost))
	for _, l := range fresh {
		if g.cfg.OnLost != nil {
			g.cfg.OnLost(l)
		}
	}
	if warn {
		g.report(ErrDiscardOld)
	}
}

func (g *Guard) report(err error) {
	if g.cfg.OnError != nil {
		g.cfg.OnError(err)
	}
}

// Run refreshes every Every until ctx ends; a failed reading keeps the last one (while NATS is
// down, publishes fail anyway) and is reported to OnError.
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(g.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, max(g.cfg.Every, 2*time.Second))
		_, err := g.Refresh(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			g.report(err)
		}
	}
}

// Admit reports whether a webhook of n bytes may be published now. It refuses only while the
// stream held no applied history at the last reading (nothing to make room from) and its bytes,
// with what this receiver admitted since and n, pass Limit of MaxBytes. A refused webhook is not
// counted.
func (g *Guard) Admit(n int) bool {
	maxBytes := g.maxBytes.Load()
	if maxBytes <= 0 || g.applied.Load() > 0 {
		return true
	}
	after := g.bytes.Load() + g.since.Add(int64(n))
	if float64(after) <= g.cfg.Limit*float64(maxBytes) {
		return true
	}
	g.since.Add(-int64(n))
	return false
}
