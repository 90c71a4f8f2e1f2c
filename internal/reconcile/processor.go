package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// Dead-letter causes (the metric's label).
const (
	causeQuarantined = "quarantined"
	causeUndecodable = "undecodable"
	causeInvalid     = "invalid"
	causePanic       = "panic"
	causeForged      = "forged"
	// causeStaleLease: a sweep fact made by a holder another had replaced (see Fact.Lease).
	causeStaleLease = "stale_lease"
)

// action is what happens to a message once its batch is decided.
type action int

const (
	actAck  action = iota // applied, duplicate, conflict recorded: done
	actNak                // not applied at shutdown: deliver again
	actTerm               // dead-lettered: never deliver again
)

// item is one message on its way through a batch.
type item struct {
	msg jetstream.Msg // nil when replaying
	d   events.Delivery
	in  store.Input
	// dead is set when the message goes to the dead-letter table instead of the ledger.
	dead  *store.DeadLetter
	cause string
	res   store.Result
	// fact is set for a reconciler's fact (knetrecon.facts.*) instead of in.
	fact    *Fact
	factRes FactResult
}

// Processor applies batches of stream messages to the ledger.
//
// The rule it keeps: every message is either applied or visibly dead-lettered, and only a message
// that can never be applied is dead-lettered. A batch the ledger cannot take (busy, locked, disk
// full, I/O error, a panic outside one event) is held, not handed back: it is retried with a
// back-off, its messages kept alive with in-progress acks, until the ledger takes it, however long
// that is. JetStream's redeliveries are never spent on it (the consumer's MaxDeliver is unbounded).
// Only deterministic failures are dead-lettered: a body that cannot be decoded, an input the
// ledger refuses, and an event that panics on its own maxDeliver times.
type Processor struct {
	ledger     *store.Ledger
	log        *zap.Logger
	metrics    *Metrics
	maxDeliver int
	// Now is the clock for lag metrics.
	Now func() time.Time
	// keys, when set (SetKeys), verify every webhook's Cko-Signature (kept by the receiver in the
	// message) over the exact body before it is applied: a message published by anyone but the
	// receiver, or altered on the bus, is dead-lettered as forged, never applied. Production
	// always sets them.
	keys atomic.Pointer[checkout.KeyRing]
	// factKeys verify the reconcilers' own facts (KNETRECON_FACT_KEYS): a fact signed by no key
	// of theirs is dead-lettered as forged.
	factKeys atomic.Pointer[checkout.KeyRing]
	// gap is the ledger against its consumer's acks (see FillGap).
	gap gapWatch
	// advCh is closed at each committed batch: it wakes the waits of FactBus.Commit.
	advMu sync.Mutex
	advCh chan struct{}
	// Stream, when set, is read for messages missing before a batch (see inOrder), so that the
	// ledger applies the stream strictly in its order, as every replica does.
	Stream jetstream.Stream
	// AckWait is the consumer's ack wait: a held batch is kept alive well within it.
	AckWait time.Duration
	// RetryMin and RetryMax bound the back-off between attempts at a batch the ledger refused.
	RetryMin, RetryMax time.Duration
	// AfterCommit, when set, runs after a batch is committed and before its acks; returning false
	// skips the acks, as if the process died there. Tests use it to simulate that crash.
	AfterCommit func() bool
	// BeforeEvent, when set, runs inside the write of each event (fault injection: the chaos
	// build and tests make it panic, a stand-in for a bug).
	BeforeEvent func(store.Input)

	// beforeApply, when set, runs inside apply before the ledger is touched (tests make it panic).
	beforeApply func()
	// panics counts, by stream sequence, the panics of one event while it was being written.
	panics  map[uint64]int
	failing atomic.Bool
}

// NewProcessor returns a Processor writing to ledger. An event that panics while it is written
// maxDeliver times is dead-lettered (KNETRECON_MAX_DELIVER); nothing else counts against it.
func NewProcessor(ledger *store.Ledger, log *zap.Logger, m *Metrics, maxDeliver int) *Processor {
	return &Processor{ledger: ledger, log: log, metrics: m, maxDeliver: maxDeliver, Now: now,
		AckWait: 30 * time.Second, RetryMin: 250 * time.Millisecond, RetryMax: 30 * time.Second,
		panics: map[uint64]int{}}
}

// SetKeys puts ring in use to verify the next messages (at start, and when the keys are reloaded).
func (p *Processor) SetKeys(ring *checkout.KeyRing) { p.keys.Store(ring) }

// SetFactKeys puts ring in use to verify the next facts (at start, and when the keys are reloaded).
func (p *Processor) SetFactKeys(ring *checkout.KeyRing) { p.factKeys.Store(ring) }

// Failing reports whether the ledger is refusing writes: a batch is held and being retried.
func (p *Processor) Failing() bool { return p.failing.Load() }

// prepare reads a message: quarantined bodies and undecodable events are marked for the
// dead-letter table, the rest decoded into a ledger input.
func (p *Processor) prepare(msg jetstream.Msg) *item {
	it := &item{msg: msg}
	d, err := events.DeliveryOf(msg)
	it.d = d
	if err != nil {
		p.deadLetter(it, causeUndecodable, err.Error())
		return it
	}
	if events.IsFact(msg.Subject()) {
		f, err := decodeFact(p.factKeys.Load(), msg.Data(), d.FactSignature)
		switch {
		case errors.Is(err, ErrUndecodable):
			p.deadLetter(it, causeUndecodable, err.Error())
		case err != nil:
			p.deadLetter(it, causeForged, "forged or altered on the bus: "+err.Error())
		default:
			it.fact = f
		}
		return it
	}
	if keys := p.keys.Load(); keys != nil {
		if _, err := keys.Verify(msg.Data(), d.Signature); err != nil {
			p.deadLetter(it, causeForged, fmt.Sprintf("forged or altered on the bus: %v (an authentic webhook carries the receiver's Cko-Signature header)", err))
			return it
		}
	}
	if d.Quarantined() {
		reason := d.QuarantineReason
		if reason == "" {
			reason = "no reason given"
		}
		p.deadLetter(it, causeQuarantined, "quarantined by the receiver: "+reason)
		return it
	}
	in, err := Decode(msg.Data(), d)
	if err != nil {
		p.deadLetter(it, causeUndecodable, err.Error())
		return it
	}
	it.in = in
	return it
}

func (p *Processor) deadLetter(it *item, cause, reason string) {
	headers := map[string]string{}
	if it.msg != nil {
		for k := range it.msg.Headers() {
			headers[k] = it.msg.Headers().Get(k)
		}
	}
	var body []byte
	subject := it.d.Subject
	if it.msg != nil {
		body, subject = it.msg.Data(), it.msg.Subject()
	}
	it.cause = cause
	it.dead = &store.DeadLetter{StreamSeq: it.d.Seq, Subject: subject, MsgID: it.d.MsgID, Reason: reason,
		Deliveries: int(it.d.NumDelivered), Headers: headers, Body: body}
}

// apply writes a batch in one transaction: each item in its own savepoint, so an input the
// ledger refuses is rolled back alone and dead-lettered in the same transaction. A transient
// failure aborts the whole batch: nothing is committed.
func (p *Processor) apply(ctx context.Context, items []*item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panic while applying a batch: %v", store.ErrTransient, r)
		}
	}()
	if p.beforeApply != nil {
		p.beforeApply()
	}
	ins := make([]store.Input, 0, len(items))
	var last uint64
	for _, it := range items {
		if it.dead == nil && it.fact == nil {
			ins = append(ins, it.in)
		}
		last = max(last, it.d.Seq)
	}
	return p.ledger.Update(ctx, func(tx *store.Tx) error {
		if err := tx.Prefetch(ctx, ins); err != nil {
			return err
		}
		for _, it := range items {
			it.res = store.Result{}
			if it.dead == nil {
				err := tx.Savepoint(ctx, func() error { return p.applyOne(ctx, tx, it) })
				if err == nil {
					continue
				}
				if store.IsTransient(err) {
					return err
				}
				cause := causeInvalid
				switch {
				case errors.Is(err, errPanicked):
					cause = causePanic
				case errors.Is(err, store.ErrStaleLease):
					cause = causeStaleLease
				}
				p.deadLetter(it, cause, err.Error())
			}
			tx.SetNow(it.d.Timestamp) // stamped with the message's stream time, in every replica alike
			if err := tx.Savepoint(ctx, func() error {
				_, err := tx.AddDeadLetter(ctx, *it.dead)
				return err
			}); err != nil {
				return fmt.Errorf("dead-letter seq %d: %w", it.d.Seq, err)
			}
		}
		return tx.Advance(ctx, last)
	})
}

// errPanicked marks an event that panicked on its own maxDeliver times: a deterministic failure.
var errPanicked = errors.New("panicked while being written")

// errEventPanic marks a batch that failed because one event panicked (fewer than maxDeliver
// times): it is tried again at once, since the ledger itself is fine.
var errEventPanic = errors.New("an event panicked")

// applyOne writes one event. A panic is recovered here, so that it is pinned on the event that
// caused it: the first maxDeliver-1 times it fails the batch as transient (the batch is held and
// tried again; a fault that passes costs nothing), the last time it is deterministic and the
// event alone is dead-lettered.
func (p *Processor) applyOne(ctx context.Context, tx *store.Tx, it *item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.panics[it.d.Seq]++
			n := p.panics[it.d.Seq]
			if n >= p.maxDeliver {
				err = fmt.Errorf("%w %d times: %v", errPanicked, n, r)
				return
			}
			err = fmt.Errorf("%w: %w: event %s (seq %d) panicked while being written (%d of %d): %v",
				store.ErrTransient, errEventPanic, it.in.EventID, it.d.Seq, n, p.maxDeliver, r)
		}
	}()
	if p.BeforeEvent != nil {
		p.BeforeEvent(it.in)
	}
	if it.fact != nil {
		if err := tx.Barrier(ctx); err != nil {
			return err
		}
		tx.SetNow(it.fact.At)
		if it.factRes, err = p.applyFact(ctx, tx, it.fact, it.d.Seq); err != nil || it.factRes.again {
			return err
		}
		res, _ := json.Marshal(it.factRes)
		return tx.SetFactResult(ctx, it.fact.ID, res)
	}
	tx.SetNow(it.d.Timestamp)
	it.res, err = tx.Apply(ctx, it.in)
	return err
}

// HandleBatch applies msgs, commits, then acks: never an ack before the commit. A batch the
// ledger refuses is held and retried until it is applied or ctx ends (then it is handed back).
func (p *Processor) HandleBatch(ctx context.Context, msgs []jetstream.Msg) {
	p.handle(context.WithoutCancel(ctx), ctx, p.prepareAll(msgs))
}

// prepareAll decodes a batch; it touches neither the ledger nor the acks, so it may run while
// the previous batch is being applied.
func (p *Processor) prepareAll(msgs []jetstream.Msg) []*item {
	items := make([]*item, len(msgs))
	for i, m := range msgs {
		items[i] = p.prepare(m)
	}
	return items
}

// handle applies prepared items, commits, then settles each message. If the ledger refuses the
// batch, it is held and retried (see hold) until it is applied or stop ends.
func (p *Processor) handle(ctx, stop context.Context, items []*item) {
	if len(items) == 0 {
		return
	}
	items = p.inOrder(ctx, items)
	start := time.Now()
	err := p.apply(ctx, items)
	// An event that panicked: try again at once. Each try pins a panic on one event, so this
	// ends within len(items) × maxDeliver tries, with the event applied or dead-lettered.
	for tries := 0; errors.Is(err, errEventPanic) && tries < len(items)*p.maxDeliver; tries++ {
		p.log.Warn("an event panicked while being written; trying the batch again", zap.Error(err))
		err = p.apply(ctx, items)
	}
	if err != nil {
		err = p.hold(ctx, stop, items, err)
	}
	if err == nil {
		for _, it := range items {
			delete(p.panics, it.d.Seq)
		}
		p.advance()
		p.metrics.applySeconds.Observe(time.Since(start).Seconds())
		p.metrics.batchSize.Observe(float64(len(items)))
		if p.AfterCommit != nil && !p.AfterCommit() {
			return
		}
	}
	var unsent int
	var lastErr error
	for _, it := range items {
		if serr := p.settle(it, decide(it, err)); serr != nil {
			unsent, lastErr = unsent+1, serr
		}
	}
	if unsent > 0 {
		// One line per batch, not one per message: a NATS outage would otherwise log thousands.
		// The ledger is committed; an ack not sent means one more (harmless) delivery.
		p.log.Warn("acks not sent; those messages will be delivered again (duplicates, no effect)",
			zap.Int("messages", unsent), zap.Int("batch", len(items)), zap.Error(lastErr))
	}
}

// inOrder sorts a batch by stream sequence and puts before it the messages the ledger has not
// applied yet that come before it, read from the stream. JetStream redelivers an unacked message
// only after its ack wait, so after a restart or a NATS server lost, newer messages can arrive
// first; the sweep's facts compare what the ledger holds at their place in the stream, so every
// ledger must apply the stream in the same order to end up the same. Messages already applied
// (sequence at or below the ledger's position) are redeliveries: duplicates, acked as such.
func (p *Processor) inOrder(ctx context.Context, items []*item) []*item {
	slices.SortStableFunc(items, func(a, b *item) int { return cmp.Compare(a.d.Seq, b.d.Seq) })
	if p.Stream == nil {
		return items
	}
	pos, err := p.ledger.Position(ctx)
	if err != nil || pos == 0 {
		return items // a ledger with no position yet starts where its consumer does
	}
	out := make([]*item, 0, len(items))
	next := pos + 1
	for _, it := range items {
		if it.d.Seq > next {
			msgs, err := events.FetchRange(ctx, p.Stream, next, it.d.Seq-1)
			if err != nil {
				p.log.Warn("messages before this batch not read; applying it out of the stream's order",
					zap.Uint64("from_seq", next), zap.Uint64("to_seq", it.d.Seq-1), zap.Error(err))
			}
			for _, m := range msgs {
				out = append(out, p.prepare(m))
			}
			if len(msgs) > 0 {
				p.log.Info("applied in the stream's order: messages not delivered yet read from the stream first",
					zap.Int("messages", len(msgs)), zap.Uint64("from_seq", next), zap.Uint64("to_seq", it.d.Seq-1))
			}
		}
		out = append(out, it)
		next = max(next, it.d.Seq+1)
	}
	return out
}

// hold retries a batch the ledger refused, with a back-off from RetryMin to RetryMax, until it
// is applied (nil) or stop ends (the last error). Its messages are kept alive meanwhile with an
// in-progress ack before every wait, so JetStream neither redelivers them nor counts a delivery.
// The state is visible: Failing, the ledger-failing gauge, /readyz, a log line when it starts,
// every 30 s while it lasts and when it ends.
func (p *Processor) hold(ctx, stop context.Context, items []*item, err error) error {
	since := time.Now()
	p.failing.Store(true)
	p.metrics.ledgerFailing.Set(1)
	p.log.Error("ledger refused a batch; holding it and retrying until the ledger takes it",
		zap.Int("messages", len(items)), zap.Uint64("first_seq", items[0].d.Seq), zap.Error(err))
	delay, lastLog := p.RetryMin, time.Now()
	for attempt := 1; ; attempt++ {
		wait := min(delay, max(p.AckWait/3, 10*time.Millisecond)) // in-progress acks well within AckWait
		keepAlive(items)
		select {
		case <-stop.Done():
			p.log.Warn("stopping with the ledger still failing; the batch is handed back to the stream",
				zap.Int("messages", len(items)), zap.Int("attempts", attempt), zap.Error(err))
			return err
		case <-time.After(wait):
		}
		p.metrics.ledgerRetries.Inc()
		if err = p.apply(ctx, items); err == nil {
			p.failing.Store(false)
			p.metrics.ledgerFailing.Set(0)
			p.log.Info("ledger takes writes again; held batch applied", zap.Int("messages", len(items)),
				zap.Int("attempts", attempt+1), zap.Duration("held", time.Since(since)))
			return nil
		}
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			p.log.Warn("ledger still refusing writes; batch held", zap.Int("messages", len(items)),
				zap.Int("attempts", attempt+1), zap.Duration("held", time.Since(since)), zap.Error(err))
		}
		delay = min(2*delay, p.RetryMax)
	}
}

// keepAlive sends an in-progress ack for msgs (a batch waiting for the writer), so that the wait
// does not run into AckWait.
func keepAlive(items []*item) {
	for _, it := range items {
		if it.msg != nil {
			_ = it.msg.InProgress()
		}
	}
}

// decide is the one place where a message's fate is chosen, from the batch's error and what
// happened to the message in it.
func decide(it *item, batchErr error) action {
	switch {
	case batchErr == nil && it.dead != nil:
		return actTerm // stored in dead_letters with the batch
	case batchErr == nil:
		return actAck // applied, duplicate or conflict: all committed
	default:
		return actNak // shutting down with the ledger failing: not applied, deliver again
	}
}

// settle carries out the decision and counts it; it returns the error of an ack, nak or term
// that could not be sent.
func (p *Processor) settle(it *item, a action) error {
	var err error
	switch a {
	case actAck:
		err = it.msg.Ack()
		p.count(it)
	case actTerm:
		reason := "dead-lettered"
		if it.dead != nil {
			reason = it.dead.Reason
		}
		err = it.msg.TermWithReason(truncate(reason, 200))
		p.metrics.deadLetters.WithLabelValues(it.cause).Inc()
		p.log.Warn("message dead-lettered", zap.Uint64("seq", it.d.Seq), zap.String("subject", it.d.Subject),
			zap.String("cause", it.cause), zap.String("reason", truncate(reason, 500)))
	case actNak:
		err = it.msg.Nak()
		p.metrics.naks.Inc()
	}
	return err
}

// count updates the metrics for an applied message.
func (p *Processor) count(it *item) {
	if it.fact != nil {
		p.metrics.applied.WithLabelValues("fact_"+it.fact.Kind, "applied").Inc()
		return
	}
	typ := it.in.Type
	if !payment.KnownEvent(typ) {
		typ = "other"
	}
	p.metrics.applied.WithLabelValues(typ, string(it.res.Outcome)).Inc()
	if it.res.Outcome == store.OutcomeDuplicate {
		p.metrics.duplicates.Inc()
	}
	for _, k := range it.res.Discrepancies {
		p.metrics.discrepancies.WithLabelValues(string(k)).Inc()
		p.log.Warn("discrepancy", zap.String("kind", string(k)), zap.String("payment", it.res.PaymentID),
			zap.String("event", it.res.EventID))
	}
}

// Consumer runs the batch loop over a durable consumer.
type Consumer struct {
	proc    *Processor
	batches *events.Batches
	log     *zap.Logger
	// Connected, when set, reports whether NATS is connected: at shutdown, the drain waits for
	// messages still in flight only while it is (a server that is down sends nothing more).
	Connected func() bool
	// FillGap, when set, applies again what the consumer acked and the ledger lacks (see
	// Processor.FillGap): before the first batch, and when idle after CheckGapSoon.
	FillGap func(context.Context)
}

// NewConsumer returns a loop applying batches from b with proc.
func NewConsumer(proc *Processor, b *events.Batches, log *zap.Logger) *Consumer {
	return &Consumer{proc: proc, batches: b, log: log}
}

// Run applies batches until ctx ends. Then it stops asking for messages, applies and acks those
// already received, and returns: the batch in hand is always finished, within drainTimeout.
//
// Two stages overlap: one goroutine pulls and decodes the next batch while this one applies and
// commits the current batch, so JSON decoding runs while SQLite writes and syncs.
func (c *Consumer) Run(ctx context.Context, drainTimeout time.Duration) error {
	work := context.WithoutCancel(ctx)
	if c.FillGap != nil {
		c.FillGap(ctx)
	}
	prepared := make(chan []*item, 1)
	pullErr := make(chan error, 1)
	go func() {
		defer close(prepared)
		pullErr <- c.pull(ctx, work, drainTimeout, prepared)
	}()
	for items := range prepared {
		if c.FillGap != nil && ctx.Err() == nil && c.proc.gapDue() {
			c.FillGap(ctx) // asked to compare again (a reconnect, a failed comparison)
		}
		if len(items) == 0 {
			continue
		}
		c.proc.handle(work, ctx, items)
	}
	return <-pullErr
}

// pull is Run's first stage: it pulls and decodes batches into out until ctx ends, then drains
// what the client already holds (bounded by drainTimeout).
func (c *Consumer) pull(ctx, work context.Context, drainTimeout time.Duration, out chan<- []*item) error {
	for ctx.Err() == nil {
		msgs, err := c.batches.Next(ctx)
		if errors.Is(err, events.ErrBatchesClosed) {
			return fmt.Errorf("consumer: %w", err)
		}
		if err != nil {
			c.log.Warn("pull failed; retrying", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if len(msgs) > 0 {
			c.send(out, c.proc.prepareAll(msgs))
		} else if c.proc.gapDue() {
			c.send(out, nil) // idle: let the writer compare the ledger with the consumer's acks
		}
	}
	// Shutdown: no new pulls; finish what the client already holds, and what the server sends
	// until the subscription is drained (a pull request in flight). Stopping at the first quiet
	// wait instead would drop the messages that arrive after it: delivered and never acked,
	// they would come back only after AckWait.
	c.batches.Drain()
	dctx, cancel := context.WithTimeout(work, drainTimeout)
	defer cancel()
	for dctx.Err() == nil {
		msgs, err := c.batches.Next(dctx)
		if err != nil {
			if !errors.Is(err, events.ErrBatchesClosed) {
				c.log.Warn("drain at shutdown ended early", zap.Error(err))
			}
			break
		}
		if len(msgs) > 0 {
			c.send(out, c.proc.prepareAll(msgs))
		} else if c.Connected != nil && !c.Connected() {
			break
		}
	}
	c.batches.Stop()
	return nil
}

// send hands a prepared batch to the writer. While the writer is busy (a slow commit, or a batch
// held while the ledger fails), this batch is kept alive with in-progress acks.
func (c *Consumer) send(out chan<- []*item, items []*item) {
	t := time.NewTicker(max(c.proc.AckWait/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case out <- items:
			return
		case <-t.C:
			keepAlive(items)
		}
	}
}

// ReplayStats counts what a replay did.
type ReplayStats struct {
	Messages int
	// Facts counts the reconcilers' facts among the messages.
	Facts        int `json:"facts"`
	Outcomes     map[store.Outcome]int
	DeadLettered int
}

// Replay re-reads the stream from where (an ordered consumer, no acks) through the same
// idempotent Apply: events the ledger holds come back as duplicates, so replaying twice changes
// nothing. It returns when it has caught up with the end of the stream.
func (p *Processor) Replay(ctx context.Context, js jetstream.JetStream, from events.ReplayFrom, batch int) (ReplayStats, error) {
	st := ReplayStats{Outcomes: map[store.Outcome]int{}}
	c, err := events.Replay(ctx, js, from)
	if err != nil {
		return st, err
	}
	b, err := events.NewBatches(c, batch, 2*time.Second, 5*time.Millisecond)
	if err != nil {
		return st, err
	}
	defer b.Stop()
	for ctx.Err() == nil {
		msgs, err := b.Next(ctx)
		if err != nil {
			return st, err
		}
		if len(msgs) == 0 {
			return st, nil // nothing within the wait: the end of the stream
		}
		items := p.prepareAll(msgs)
		if err := p.apply(ctx, items); err != nil {
			return st, fmt.Errorf("replay at seq %d: %w", items[0].d.Seq, err)
		}
		p.advance()
		for _, it := range items {
			st.Messages++
			switch {
			case it.dead != nil:
				st.DeadLettered++
			case it.fact != nil:
				st.Facts++
			default:
				st.Outcomes[it.res.Outcome]++
			}
		}
		if last := items[len(items)-1].d; last.Pending == 0 || (from.Until > 0 && last.Seq >= from.Until) {
			return st, nil
		}
	}
	return st, ctx.Err()
}

// replayIn applies dead letter id again in tx (after a fix in the decoder or the rules; a fact
// once its key is known) and records the result on it. Its signature is verified again first.
func (p *Processor) replayIn(ctx context.Context, tx *store.Tx, id int64) (store.Result, error) {
	d, err := tx.DeadLetter(ctx, id) // it may have been added in this very batch
	if err != nil {
		return store.Result{}, err
	}
	if d.DiscardedAt != nil {
		return store.Result{}, fmt.Errorf("dead letter %d was discarded by %s (%s): %w", id, d.DiscardedBy, d.DiscardNote, store.ErrAlreadyHandled)
	}
	var res store.Result
	var aerr, decErr error
	var f *Fact
	var in store.Input
	if events.IsFact(d.Subject) {
		f, decErr = decodeFact(p.factKeys.Load(), d.Body, d.Headers[events.HeaderFactSignature])
	} else {
		// Received when the receiver says (its header), as the first delivery had it: never
		// when this ledger happened to dead-letter it.
		received := d.CreatedAt
		if at, err := time.Parse(time.RFC3339Nano, d.Headers[events.HeaderReceivedAt]); err == nil {
			received = at
		}
		in, decErr = Decode(d.Body, events.Delivery{Subject: d.Subject, Seq: d.StreamSeq, Timestamp: d.CreatedAt, ReceivedAt: received})
		if keys := p.keys.Load(); keys != nil && decErr == nil {
			if _, err := keys.Verify(d.Body, d.Headers[events.HeaderSignature]); err != nil {
				decErr = fmt.Errorf("signature not verified, not applied: %w", err)
			}
		}
		if decErr == nil {
			// A replayed webhook is not tied to a live stream delivery any more.
			in.StreamSeq = d.StreamSeq
		}
	}
	if decErr != nil {
		return res, errors.Join(decErr, tx.MarkReplayed(ctx, id, "failed: "+truncate(decErr.Error(), 500)))
	}
	if serr := tx.Savepoint(ctx, func() error {
		if f != nil {
			_, aerr = p.applyFact(ctx, tx, f, d.StreamSeq)
			res.Outcome = store.OutcomeApplied
			return aerr
		}
		res, aerr = tx.Apply(ctx, in)
		return aerr
	}); serr != nil && store.IsTransient(serr) {
		return res, serr
	}
	if aerr != nil {
		return res, errors.Join(aerr, tx.MarkReplayed(ctx, id, "failed: "+truncate(aerr.Error(), 500)))
	}
	return res, tx.MarkReplayed(ctx, id, store.ReplayApplied)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WatchLag sets the consumer-lag gauges from the stream itself every every, until ctx ends:
// messages not yet applied (not delivered, or delivered and not acked) and the age of the oldest
// of them. Read from the server on a timer rather than from the batches applied, so a hung or
// dead consumer shows its lag growing (and trips the alert) instead of freezing the gauges.
func (p *Processor) WatchLag(ctx context.Context, js jetstream.JetStream, durable string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.readLag(ctx, js, durable)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Processor) readLag(ctx context.Context, js jetstream.JetStream, durable string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, events.StreamName, durable)
	if err != nil {
		return // NATS down: the gauges keep their last reading; the NATS alerts speak
	}
	info, err := c.Info(ctx)
	if err != nil {
		return
	}
	behind := info.NumPending + uint64(info.NumAckPending)
	p.metrics.lagMessages.Set(float64(behind))
	if behind == 0 {
		p.metrics.lagSeconds.Set(0)
		return
	}
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return
	}
	// The oldest message not applied is the first after the ack floor that the stream still holds.
	msg, err := s.GetMsg(ctx, info.AckFloor.Stream+1)
	if err != nil {
		return
	}
	p.metrics.lagSeconds.Set(max(0, p.Now().Sub(msg.Time).Seconds()))
}
