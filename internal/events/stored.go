package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// storedMsg is a message read from the stream by sequence (not delivered by a consumer), shaped
// as a delivered one: its acks go nowhere, since no consumer waits for them.
type storedMsg struct{ raw *jetstream.RawStreamMsg }

func (m storedMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.raw.Sequence}, NumDelivered: 1,
		Stream: StreamName, Timestamp: m.raw.Time}, nil
}
func (m storedMsg) Data() []byte                     { return m.raw.Data }
func (m storedMsg) Headers() nats.Header             { return m.raw.Header }
func (m storedMsg) Subject() string                  { return m.raw.Subject }
func (m storedMsg) Reply() string                    { return "" }
func (m storedMsg) Ack() error                       { return nil }
func (m storedMsg) DoubleAck(context.Context) error  { return nil }
func (m storedMsg) Nak() error                       { return nil }
func (m storedMsg) NakWithDelay(time.Duration) error { return nil }
func (m storedMsg) InProgress() error                { return nil }
func (m storedMsg) Term() error                      { return nil }
func (m storedMsg) TermWithReason(string) error      { return nil }

// MaxGap bounds how many messages FetchRange reads at once.
const MaxGap = 10000

// FetchRange reads the stream's messages from..to (both included) by sequence, for a consumer
// that must apply them in order before what it was delivered: JetStream redelivers an unacked
// message only after its ack wait, so after a restart or a lost connection newer messages can
// arrive first. Sequences the stream no longer holds are skipped.
func FetchRange(ctx context.Context, s jetstream.Stream, from, to uint64) ([]jetstream.Msg, error) {
	if to < from {
		return nil, nil
	}
	if to-from+1 > MaxGap {
		return nil, fmt.Errorf("a gap of %d messages (seq %d to %d) is more than %d to fetch at once", to-from+1, from, to, MaxGap)
	}
	out := make([]jetstream.Msg, 0, to-from+1)
	for seq := from; seq <= to; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read stream seq %d: %w", seq, err)
		}
		out = append(out, storedMsg{raw})
	}
	return out, nil
}
