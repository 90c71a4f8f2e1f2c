package events

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Facts are what the reconcilers learn themselves (the sweep's answers from Checkout.com) and
// what operators decide (resolve, discard, replay, check). They travel the stream like webhooks,
// so that every ledger, applying the stream in its order, ends up the same.
const (
	// FactSubjectPrefix starts the subject of every fact: knetrecon.facts.<kind>.
	FactSubjectPrefix = "knetrecon.facts."
	// HeaderFactSignature is the fact's HMAC-SHA256 (hex) under the reconcilers' own key
	// (KNETRECON_FACT_KEYS): a fact without a valid one is dead-lettered as forged.
	HeaderFactSignature = "Knetrecon-Fact-Signature"
	// HeaderFactKey names the fact key that signed (its fingerprint, never the key).
	HeaderFactKey = "Knetrecon-Fact-Key"
)

// FactSubject returns the subject of a fact of kind.
func FactSubject(kind string) string { return FactSubjectPrefix + strings.ReplaceAll(kind, ".", "_") }

// IsFact reports whether subject holds a reconciler's fact rather than a webhook.
func IsFact(subject string) bool { return strings.HasPrefix(subject, FactSubjectPrefix) }

// FactMessage builds a fact's message: its subject, its de-duplication id (deterministic, so that
// a fact published twice, by one reconciler or by two, is stored once), the body and its signature.
func FactMessage(kind, msgID string, body []byte, signature, keyName string) *nats.Msg {
	m := &nats.Msg{Subject: FactSubject(kind), Header: make(nats.Header, 3), Data: body}
	m.Header.Set(HeaderMsgID, msgID)
	m.Header.Set(HeaderFactSignature, signature)
	if keyName != "" {
		m.Header.Set(HeaderFactKey, keyName)
	}
	return m
}

// PublishMsg stores m in the stream and returns once JetStream acknowledged it (a duplicate is
// success); anything else wraps ErrNotStored. A message the stream refuses for want of room is
// tried again after Room gave up applied history; ErrStreamFull when there is none to give up.
func (p *Publisher) PublishMsg(ctx context.Context, m *nats.Msg) (Stored, error) {
	for try := 1; ; try++ {
		st, err := p.publish(ctx, m)
		if err == nil || !isStreamFull(err) {
			return st, err
		}
		id := m.Header.Get(HeaderMsgID)
		if try == publishTries {
			return Stored{}, fmt.Errorf("publish %s: %w", id, ErrStreamFull)
		}
		b, ok, rerr := p.room.Fit(ctx, storedSize(m))
		if rerr != nil {
			return Stored{}, fmt.Errorf("publish %s: %w (making room: %w)", id, ErrStreamFull, rerr)
		}
		if !ok {
			return Stored{}, fmt.Errorf("publish %s: %w (%d of %d bytes, %d unapplied messages)", id, ErrStreamFull, b.Bytes, b.MaxBytes, b.UnappliedMsgs)
		}
	}
}

// publishTries bounds the publishes of one message the stream refuses for want of room: other
// publishers may take the room made between two tries.
const publishTries = 3

func (p *Publisher) publish(ctx context.Context, m *nats.Msg) (Stored, error) {
	id := m.Header.Get(HeaderMsgID)
	fut, err := p.js.PublishMsgAsync(m, jetstream.WithExpectStream(StreamName))
	if err != nil {
		return Stored{}, fmt.Errorf("publish %s: %w: %w", id, ErrNotStored, err)
	}
	select {
	case ack := <-fut.Ok():
		return Stored{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
	case err := <-fut.Err():
		return Stored{}, fmt.Errorf("publish %s: %w: %w", id, ErrNotStored, err)
	case <-ctx.Done():
		return Stored{}, fmt.Errorf("publish %s: %w: %w", id, ErrNotStored, ctx.Err())
	}
}
