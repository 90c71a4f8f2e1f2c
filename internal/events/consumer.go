package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerConfig is the reconciler's durable pull consumer on the stream.
type ConsumerConfig struct {
	// Durable names the consumer; its position survives restarts of the reconciler and of NATS.
	Durable string
	// AckWait is how long JetStream waits for an ack before delivering a message again. It must
	// cover fetching, applying and committing a whole batch.
	AckWait time.Duration
	// MaxDeliver is how many times one event may fail deterministically (panic while it is
	// written) before the reconciler dead-letters it. It is not JetStream's MaxDeliver: the
	// consumer's deliveries are unbounded, so that a ledger failing for hours (each redelivery
	// after a crash or an ack wait counts as one) never makes JetStream drop a message.
	MaxDeliver int
	// MaxAckPending bounds messages delivered and not yet acked: at least two batches.
	MaxAckPending int
}

// DefaultConsumerConfig returns the defaults: durable "reconciler", 30 s ack wait, an event
// dead-lettered after 10 panics of its own, 4096 messages in flight.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{Durable: "reconciler", AckWait: 30 * time.Second, MaxDeliver: 10, MaxAckPending: 4096}
}

// Validate checks the configuration; its messages name the environment variable to fix.
func (c ConsumerConfig) Validate() error {
	var errs []error
	if c.Durable == "" {
		errs = append(errs, errors.New("KNETRECON_CONSUMER must name the durable consumer"))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("KNETRECON_ACK_WAIT must be at least 1s, got %s", c.AckWait))
	}
	if c.MaxDeliver < 2 {
		errs = append(errs, fmt.Errorf("KNETRECON_MAX_DELIVER must be at least 2, got %d", c.MaxDeliver))
	}
	if c.MaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("KNETRECON_MAX_ACK_PENDING must be positive, got %d", c.MaxAckPending))
	}
	return errors.Join(errs...)
}

// EnsureConsumer creates the durable pull consumer over every subject of the stream (events and
// quarantine), with explicit acks, or updates it to cfg. Calling it again changes nothing.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig) (jetstream.Consumer, error) {
	c, _, err := EnsureConsumerAt(ctx, js, cfg, 0)
	return c, err
}

// EnsureConsumerAt is EnsureConsumer for a ledger that holds the stream up to position: a
// consumer found missing (its definition lost in a power cut, or removed) is created to deliver
// from position+1, not from the start of the retention (which would deliver weeks of events
// again); one found further behind the ledger than its acks in flight could explain is made
// again at position+1. placed says what was done ("" when the consumer was there and in step).
// A stream whose last sequence is below position (made again, empty) is delivered from its start.
func EnsureConsumerAt(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig, position uint64) (c jetstream.Consumer, placed string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	want := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "knetrecon reconciler: applies every event to the ledger",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // unbounded: see ConsumerConfig.MaxDeliver
		MaxAckPending: cfg.MaxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	at := func() {
		if position == 0 {
			return
		}
		s, err := js.Stream(ctx, StreamName)
		if err != nil {
			return
		}
		if last := s.CachedInfo().State.LastSeq; last < position {
			placed = fmt.Sprintf("consumer %s: the stream ends at seq %d, before the ledger's position %d (made again?): delivered from its start", cfg.Durable, last, position)
			return
		}
		want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverByStartSequencePolicy, position+1
	}
	existing, err := js.Consumer(ctx, StreamName, cfg.Durable)
	switch {
	case err == nil:
		info := existing.CachedInfo()
		want.DeliverPolicy, want.OptStartSeq = info.Config.DeliverPolicy, info.Config.OptStartSeq // not updatable
		if floor := info.AckFloor.Stream; position > floor+uint64(cfg.MaxAckPending) {
			if err := js.DeleteConsumer(ctx, StreamName, cfg.Durable); err != nil {
				return nil, "", fmt.Errorf("consumer %s behind the ledger: remove it: %w", cfg.Durable, err)
			}
			placed = fmt.Sprintf("consumer %s acked up to seq %d, the ledger holds up to %d: made again to deliver from seq %d", cfg.Durable, floor, position, position+1)
			want.DeliverPolicy, want.OptStartSeq = jetstream.DeliverAllPolicy, 0
			at()
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if position > 0 {
			placed = fmt.Sprintf("consumer %s missing while the ledger holds the stream up to seq %d: created to deliver from seq %d", cfg.Durable, position, position+1)
		}
		at()
	default:
		return nil, "", fmt.Errorf("consumer %s: %w", cfg.Durable, err)
	}
	c, err = js.CreateOrUpdateConsumer(ctx, StreamName, want)
	if err != nil {
		return nil, "", fmt.Errorf("create or update consumer %s: %w", cfg.Durable, err)
	}
	return c, placed, nil
}

// Batches pulls messages from a consumer in batches: it waits up to wait for a first message,
// then takes what follows within linger, up to size. A pull request stays open in the background
// (Messages), so a busy stream is read without a round trip per batch.
//
// One goroutine waits on the client's iterator without a deadline, so that the client's heartbeat
// check runs: when the server forgets the pull request (JetStream restarted, as the receiver does
// after its store's disk was full), the iterator misses two heartbeats and pulls again, within
// pullHeartbeat×2. Waiting on it with short deadlines instead restarted that check at every
// call, and a forgotten pull was never noticed.
type Batches struct {
	it     jetstream.MessagesContext
	size   int
	wait   time.Duration
	linger time.Duration

	msgs chan jetstream.Msg
	errs chan error
	stop chan struct{} // closed by Stop: a message the feeder holds is left (redelivered after AckWait)
	done chan struct{} // closed when the feeder has ended (the iterator closed)
	once sync.Once
}

// pullHeartbeat is how often the server confirms an idle pull request; two missed mean it is
// gone and the client pulls again.
const pullHeartbeat = 2 * time.Second

// NewBatches starts pulling from c. Stop or Drain it when done.
func NewBatches(c jetstream.Consumer, size int, wait, linger time.Duration) (*Batches, error) {
	if size < 1 {
		return nil, fmt.Errorf("KNETRECON_BATCH_SIZE must be positive, got %d", size)
	}
	it, err := c.Messages(jetstream.PullMaxMessages(2*size), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return nil, fmt.Errorf("pull from consumer: %w", err)
	}
	b := &Batches{it: it, size: size, wait: wait, linger: linger,
		msgs: make(chan jetstream.Msg), errs: make(chan error, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.feed()
	return b, nil
}

// feed hands the iterator's messages to Next until the iterator is closed.
func (b *Batches) feed() {
	defer close(b.done)
	for {
		msg, err := b.it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			// Missed heartbeats and the like: the iterator pulls again by itself; Next reports it.
			select {
			case b.errs <- err:
			default:
			}
			continue
		}
		select {
		case b.msgs <- msg:
		case <-b.stop:
			return
		}
	}
}

// ErrBatchesClosed is returned by Next once the puller is stopped or drained and empty.
var ErrBatchesClosed = errors.New("batches closed")

// Next returns the next batch: nil with no error when nothing arrived within the wait, or when
// ctx ended (the caller checks ctx). Messages already received are always returned, never left
// unacknowledged in a buffer.
func (b *Batches) Next(ctx context.Context) ([]jetstream.Msg, error) {
	var out []jetstream.Msg
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	for len(out) < b.size {
		select {
		case msg := <-b.msgs:
			out = append(out, msg)
			if len(out) == 1 {
				// After the first message, the batch takes what arrives within linger in all: a
				// steady trickle (1,000/s) must not hold the first one until the batch is full.
				timer.Reset(b.linger)
			}
		case err := <-b.errs:
			if len(out) > 0 {
				return out, nil
			}
			return nil, fmt.Errorf("pull: %w", err)
		case <-b.done:
			if len(out) > 0 {
				return out, nil
			}
			return nil, ErrBatchesClosed
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, nil
		}
	}
	return out, nil
}

// Stop stops pulling; messages buffered and not yet returned are redelivered after AckWait.
func (b *Batches) Stop() {
	b.once.Do(func() { close(b.stop) })
	b.it.Stop()
}

// Drain stops asking for more; Next keeps returning what is buffered, then ErrBatchesClosed.
func (b *Batches) Drain() { b.it.Drain() }

// Delivery is what the reconciler needs from one stream message's metadata and headers.
type Delivery struct {
	Subject string
	// Seq is the stream sequence; NumDelivered counts deliveries of this message (1 the first time).
	Seq          uint64
	NumDelivered uint64
	// Pending is how many messages the consumer has not been given yet, after this one.
	Pending uint64
	// Timestamp is when the stream stored the message.
	Timestamp time.Time
	// MsgID, ReceivedAt, Key, QuarantineReason and Signature come from the receiver's headers.
	MsgID            string
	ReceivedAt       time.Time
	Key              string
	QuarantineReason string
	Signature        string
	// FactSignature and FactKey are a fact's signature under the reconcilers' key and its name.
	FactSignature, FactKey string
}

// Quarantined reports whether the receiver put the body in quarantine.
func (d Delivery) Quarantined() bool { return d.Subject == QuarantineSubject }

// DeliveryOf reads msg's metadata and headers. A missing or bad received-at header falls back to
// the stream's timestamp.
func DeliveryOf(msg jetstream.Msg) (Delivery, error) {
	d := Delivery{Subject: msg.Subject()}
	md, err := msg.Metadata()
	if err != nil {
		return d, fmt.Errorf("message metadata: %w", err)
	}
	d.Seq, d.NumDelivered, d.Pending, d.Timestamp = md.Sequence.Stream, md.NumDelivered, md.NumPending, md.Timestamp
	h := msg.Headers()
	d.MsgID, d.Key, d.QuarantineReason = h.Get(HeaderMsgID), h.Get(HeaderKey), h.Get(HeaderQuarantineReason)
	d.Signature = h.Get(HeaderSignature)
	d.FactSignature, d.FactKey = h.Get(HeaderFactSignature), h.Get(HeaderFactKey)
	d.ReceivedAt = d.Timestamp
	if v := h.Get(HeaderReceivedAt); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			d.ReceivedAt = t
		}
	}
	return d, nil
}

// ReplayFrom says where a replay starts: a stream sequence, or a time.
type ReplayFrom struct {
	Seq  uint64
	Time time.Time
	// Until, when set, ends the replay once this sequence is read (else at the stream's end).
	Until uint64
}

// Replay opens an ordered, ephemeral consumer on the whole stream from where: it reads without
// acks and without disturbing the durable consumer.
func Replay(ctx context.Context, js jetstream.JetStream, from ReplayFrom) (jetstream.Consumer, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case from.Seq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from.Seq
	case !from.Time.IsZero():
		t := from.Time
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	c, err := js.OrderedConsumer(ctx, StreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("replay consumer: %w", err)
	}
	return c, nil
}
