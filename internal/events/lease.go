package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Leases: exactly one reconciler runs the sweep at a time. It holds a key in a NATS KV bucket whose
// entries expire after the lease's TTL, and renews it well within the TTL; when it dies, the key
// expires and another reconciler's Create succeeds. A reconciler that stops releases the key, so
// the next one takes over at once.
const (
	// LeaseBucket is the KV bucket of leases.
	LeaseBucket = "KNETRECON_LEASES"
	// SweepLease is the key of the sweep's lease.
	SweepLease = "sweep"
)

// Lease is one process's claim on a key of LeaseBucket.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	// Now is the clock that times the lease's validity.
	Now func() time.Time

	mu      sync.Mutex
	rev     uint64
	renewed time.Time
	// term is the revision at which this holder took the lease (its Create): it stays while the
	// lease is renewed, and a later holder's term is always higher.
	term uint64
}

// BucketTTL returns how long the lease bucket keeps an entry unrenewed: the bucket's own TTL, set
// by whoever created it. A lease is timed by it, never by a local setting, or a holder configured
// with a longer TTL would go on sweeping after its key expired and another took it.
func BucketTTL(ctx context.Context, kv jetstream.KeyValue) (time.Duration, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("lease bucket %s: %w", LeaseBucket, err)
	}
	return st.TTL(), nil
}

// BucketEpoch returns when the lease bucket was created (Unix nanoseconds): a term is a revision
// of the bucket, and a bucket made again (deleted by an operator) starts its revisions low, so
// terms compare by (epoch, revision).
func BucketEpoch(ctx context.Context, kv jetstream.KeyValue) (int64, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("lease bucket %s: %w", LeaseBucket, err)
	}
	if s, ok := st.(interface{ StreamInfo() *jetstream.StreamInfo }); ok && s.StreamInfo() != nil {
		return s.StreamInfo().Created.UnixNano(), nil
	}
	return 0, nil
}

// Term returns the term of the lease this holder took last (0 when it never took it): the
// revision at which it took it. It is kept after the lease is lost: facts made under the lease
// carry it, so the consumer refuses those of a holder another has replaced, even when the holder
// (paused, or cut off) has not noticed yet.
func (l *Lease) Term() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term
}

// TTL is how long the lease lives unrenewed.
func (l *Lease) TTL() time.Duration { return l.ttl }

// EnsureLeases opens the lease bucket, creating it when it is missing: entries living ttl, in as
// many copies as the stream (one when there is no stream yet). Reconcilers starting together race to create it, and a JetStream cluster may
// leave the loser's request unanswered: each attempt is bounded, and tried again until ctx ends.
func EnsureLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (jetstream.KeyValue, error) {
	replicas := 1
	if s, err := js.Stream(ctx, StreamName); err == nil {
		replicas = max(s.CachedInfo().Config.Replicas, 1)
	}
	cfg := jetstream.KeyValueConfig{
		Bucket: LeaseBucket, Description: "knetrecon leases: who runs the sweep", History: 1, TTL: ttl,
		Storage: jetstream.FileStorage, Replicas: replicas,
	}
	var err error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		var kv jetstream.KeyValue
		if kv, err = js.KeyValue(attempt, LeaseBucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(attempt, cfg)
		}
		cancel()
		if err == nil {
			return kv, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lease bucket %s: %w", LeaseBucket, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// NewLease returns holder's claim on key; Try takes or renews it.
func NewLease(kv jetstream.KeyValue, key, holder string, ttl time.Duration) *Lease {
	return &Lease{kv: kv, key: key, holder: holder, ttl: ttl, Now: time.Now}
}

// Try takes the lease if nobody holds it, or renews it if this holder does. It reports whether the
// lease is held now. An error (NATS unreachable) means not held: a holder that cannot renew must
// assume another has taken over once its TTL ran out.
func (l *Lease) Try(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	if l.rev != 0 {
		rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), l.rev)
		if err == nil {
			l.rev, l.renewed = rev, now
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyNotFound) && !isWrongSequence(err) {
			// Not answered: still held until the TTL since the last renewal runs out.
			return l.validLocked(now), fmt.Errorf("renew lease %s: %w", l.key, err)
		}
		l.rev = 0 // expired and taken (or deleted): ours no more
	}
	rev, err := l.kv.Create(ctx, l.key, []byte(l.holder))
	if err == nil {
		l.rev, l.renewed, l.term = rev, now, rev
		return true, nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return false, nil
	}
	return false, fmt.Errorf("take lease %s: %w", l.key, err)
}

// isWrongSequence recognises the server's "wrong last sequence" answer to a conditional write.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Held reports whether the lease is held and was renewed within its TTL.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validLocked(l.Now())
}

func (l *Lease) validLocked(now time.Time) bool {
	return l.rev != 0 && now.Sub(l.renewed) < l.ttl
}

// Holder returns who holds the lease now, as the bucket says ("" when nobody does).
func (l *Lease) Holder(ctx context.Context) (string, error) {
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease %s: %w", l.key, err)
	}
	return string(e.Value()), nil
}

// Release gives the lease up (if held), so that another holder takes it at its next try.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return nil
	}
	rev := l.rev
	l.rev = 0
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return nil
}

// Run tries the lease every TTL/3 until ctx ends, calling onChange when it is gained or lost (and
// at the first failed try of a series), then releases it.
func (l *Lease) Run(ctx context.Context, onChange func(held bool, err error)) {
	every := max(l.ttl/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	was, failing := false, false
	for {
		tctx, cancel := context.WithTimeout(ctx, every)
		held, err := l.Try(tctx)
		cancel()
		// Told of a change, and of the first failure in a row (not of every one while NATS is down).
		if onChange != nil && (held != was || (err != nil && !failing)) {
			onChange(held, err)
		}
		was, failing = held, err != nil
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = l.Release(rctx)
			cancel()
			if was && onChange != nil {
				onChange(false, nil)
			}
			return
		case <-t.C:
		}
	}
}
