package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"knetrecon/internal/events"
	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// Dead-letter causes (the metric's label).
const (
	causeQuarantined   = "quarantined"
	causeUndecodable   = "undecodable"
	causeInvalid       = "invalid"
	causeMaxDeliveries = "max_deliveries"
)

// action is what happens to a message once its batch is decided.
type action int

const (
	actAck  action = iota // applied, duplicate, conflict recorded: done
	actNak                // transient failure: deliver again after a back-off
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
	// deadStored reports that a dead letter was committed outside the batch (last delivery).
	deadStored bool
	res        store.Result
}

// Processor applies batches of stream messages to the ledger.
type Processor struct {
	ledger     *store.Ledger
	log        *zap.Logger
	metrics    *Metrics
	maxDeliver uint64
	// Now is the clock for lag metrics.
	Now func() time.Time
	// AfterCommit, when set, runs after a batch is committed and before its acks; returning false
	// skips the acks, as if the process died there. Tests use it to simulate that crash.
	AfterCommit func() bool

	// beforeApply, when set, runs inside apply (tests make it panic, a stand-in for a bug).
	beforeApply func()
}

// NewProcessor returns a Processor writing to ledger. maxDeliver must equal the consumer's
// MaxDeliver: on that delivery a message that still fails is dead-lettered.
func NewProcessor(ledger *store.Ledger, log *zap.Logger, m *Metrics, maxDeliver int) *Processor {
	return &Processor{ledger: ledger, log: log, metrics: m, maxDeliver: uint64(maxDeliver), Now: now}
}

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
	for _, it := range items {
		if it.dead == nil {
			ins = append(ins, it.in)
		}
	}
	return p.ledger.Update(ctx, func(tx *store.Tx) error {
		if err := tx.Prefetch(ctx, ins); err != nil {
			return err
		}
		for _, it := range items {
			it.res = store.Result{}
			if it.dead == nil {
				err := tx.Savepoint(ctx, func() error {
					var err error
					it.res, err = tx.Apply(ctx, it.in)
					return err
				})
				if err == nil {
					continue
				}
				if store.IsTransient(err) {
					return err
				}
				p.deadLetter(it, causeInvalid, err.Error())
			}
			if err := tx.Savepoint(ctx, func() error {
				_, err := tx.AddDeadLetter(ctx, *it.dead)
				return err
			}); err != nil {
				return fmt.Errorf("dead-letter seq %d: %w", it.d.Seq, err)
			}
		}
		return nil
	})
}

// HandleBatch applies msgs, commits, then acks: never an ack before the commit. On a transient
// failure every message is handed back with a back-off, except those on their last delivery,
// which are dead-lettered so that reaching MaxDeliver never loses a message.
func (p *Processor) HandleBatch(ctx context.Context, msgs []jetstream.Msg) {
	p.handle(ctx, p.prepareAll(msgs))
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

// handle applies prepared items, commits, then settles each message.
func (p *Processor) handle(ctx context.Context, items []*item) {
	if len(items) == 0 {
		return
	}
	start := time.Now()
	err := p.apply(ctx, items)
	if err != nil {
		p.log.Warn("batch not applied; handing it back", zap.Int("messages", len(items)), zap.Error(err),
			zap.Bool("transient", store.IsTransient(err)))
		for _, it := range items {
			if p.maxDeliver > 0 && it.d.NumDelivered >= p.maxDeliver {
				it.deadStored = p.giveUp(ctx, it, err)
			}
		}
	} else {
		p.metrics.applySeconds.Observe(time.Since(start).Seconds())
		p.metrics.batchSize.Observe(float64(len(items)))
		if p.AfterCommit != nil && !p.AfterCommit() {
			return
		}
	}
	for _, it := range items {
		p.settle(it, decide(it, err))
	}
	last := items[len(items)-1].d
	p.metrics.lagMessages.Set(float64(last.Pending))
	if !last.ReceivedAt.IsZero() {
		p.metrics.lagSeconds.Set(p.Now().Sub(last.ReceivedAt).Seconds())
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
	case it.deadStored:
		return actTerm // last delivery, dead-lettered on its own
	default:
		return actNak
	}
}

// settle carries out the decision and counts it.
func (p *Processor) settle(it *item, a action) {
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
		err = it.msg.NakWithDelay(events.NakDelay(it.d.NumDelivered))
		p.metrics.naks.Inc()
	}
	if err != nil {
		// The ledger is committed; a lost ack means one more (harmless) delivery.
		p.log.Warn("ack/nak/term not sent", zap.Uint64("seq", it.d.Seq), zap.Error(err))
	}
}

// count updates the metrics for an applied message.
func (p *Processor) count(it *item) {
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

// giveUp dead-letters a message on its last delivery, in a transaction of its own. If even that
// fails the message stays in the stream (limits retention) for `reconciler replay --from-seq`.
func (p *Processor) giveUp(ctx context.Context, it *item, cause error) bool {
	reason := fmt.Sprintf("gave up after %d deliveries: %v", it.d.NumDelivered, cause)
	if it.dead != nil {
		reason += "; " + it.dead.Reason
	}
	p.deadLetter(it, causeMaxDeliveries, reason)
	err := p.ledger.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.AddDeadLetter(ctx, *it.dead)
		return err
	})
	if err != nil {
		p.log.Error("message could not be dead-lettered on its last delivery; it stays in the stream",
			zap.Uint64("seq", it.d.Seq), zap.Error(err))
		return false
	}
	return true
}

// Consumer runs the batch loop over a durable consumer.
type Consumer struct {
	proc    *Processor
	batches *events.Batches
	log     *zap.Logger
	// Connected, when set, reports whether NATS is connected: at shutdown, the drain waits for
	// messages still in flight only while it is (a server that is down sends nothing more).
	Connected func() bool
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
	prepared := make(chan []*item, 1)
	pullErr := make(chan error, 1)
	go func() {
		defer close(prepared)
		pullErr <- c.pull(ctx, work, drainTimeout, prepared)
	}()
	for items := range prepared {
		c.proc.handle(work, items)
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
			out <- c.proc.prepareAll(msgs)
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
			out <- c.proc.prepareAll(msgs)
		} else if c.Connected != nil && !c.Connected() {
			break
		}
	}
	c.batches.Stop()
	return nil
}

// ReplayStats counts what a replay did.
type ReplayStats struct {
	Messages     int
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
		for _, it := range items {
			st.Messages++
			if it.dead != nil {
				st.DeadLettered++
			} else {
				st.Outcomes[it.res.Outcome]++
			}
		}
		if items[len(items)-1].d.Pending == 0 {
			return st, nil
		}
	}
	return st, ctx.Err()
}

// ReplayDeadLetter applies dead letter id again (after a fix in the decoder or the rules) and
// records the result on it. It returns the ledger's result.
func (p *Processor) ReplayDeadLetter(ctx context.Context, id int64) (store.Result, error) {
	d, err := p.ledger.DeadLetter(ctx, id)
	if err != nil {
		return store.Result{}, err
	}
	var res store.Result
	var aerr error
	in, decErr := Decode(d.Body, events.Delivery{Subject: d.Subject, Seq: d.StreamSeq, ReceivedAt: d.CreatedAt})
	if decErr == nil {
		// A replayed webhook is not tied to a live stream delivery any more.
		in.StreamSeq = d.StreamSeq
	}
	err = p.ledger.Update(ctx, func(tx *store.Tx) error {
		if decErr != nil {
			return tx.MarkReplayed(ctx, id, "failed: "+truncate(decErr.Error(), 500))
		}
		if serr := tx.Savepoint(ctx, func() error {
			res, aerr = tx.Apply(ctx, in)
			return aerr
		}); serr != nil && store.IsTransient(serr) {
			return serr
		}
		if aerr != nil {
			return tx.MarkReplayed(ctx, id, "failed: "+truncate(aerr.Error(), 500))
		}
		return tx.MarkReplayed(ctx, id, "applied")
	})
	if err != nil {
		return res, fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	if decErr != nil {
		return res, decErr
	}
	return res, aerr
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
