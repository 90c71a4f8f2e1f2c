package reconcile

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"knetrecon/internal/events"
)

// GapState is where the ledger stands against its durable consumer's acks.
type GapState struct {
	// Checked: the ledger's position was compared with the consumer's ack floor at least once
	// since the start (or the last reconnect).
	Checked bool `json:"checked"`
	// Position is the ledger's stream position; AckFloor the consumer's.
	Position uint64 `json:"position"`
	AckFloor uint64 `json:"ack_floor"`
	// Lost counts messages the consumer acked that the ledger lacks and the stream no longer
	// holds (seq LostFrom to LostTo): the ledger needs a rebuild from a backup.
	Lost             uint64 `json:"lost,omitempty"`
	LostFrom, LostTo uint64 `json:"-"`
	// Err is why the last comparison could not be made.
	Err string `json:"error,omitempty"`
}

// Ready reports whether the ledger holds everything its consumer acked.
func (g GapState) Ready() bool {
	return g.Checked && g.Lost == 0 && g.Err == "" && g.Position >= g.AckFloor
}

// Why says, for /readyz and the desk, why the ledger is not ready ("" when it is).
func (g GapState) Why() string {
	switch {
	case g.Lost > 0:
		return fmt.Sprintf("the ledger lacks %d messages its consumer acked (stream seq %d to %d) and the stream no longer holds them: "+
			"rebuild it from a backup (reconciler rebuild --from-backup FILE)", g.Lost, g.LostFrom, g.LostTo)
	case g.Err != "":
		return "the ledger's position not yet compared with its consumer's acks: " + g.Err
	case !g.Checked:
		return "comparing the ledger's position with its consumer's acks"
	case g.Position < g.AckFloor:
		return fmt.Sprintf("applying again from the stream what the consumer acked and the ledger lacks (seq %d to %d)", g.Position+1, g.AckFloor)
	}
	return ""
}

// gapWatch is the processor's record of the gap (see FillGap).
type gapWatch struct {
	mu      sync.Mutex
	state   GapState
	retryAt time.Time   // a comparison that failed is tried again from then
	due     atomic.Bool // compare again (set at a reconnect, and after a failed comparison)
}

// GapRetry is how long after a failed comparison (NATS not answering: a server lost, a leader
// being elected) it is tried again.
var GapRetry = 2 * time.Second

// gapDue reports whether the consumer should compare the ledger with its ack floor now.
func (p *Processor) gapDue() bool {
	if !p.gap.due.Load() {
		return false
	}
	p.gap.mu.Lock()
	defer p.gap.mu.Unlock()
	return !time.Now().Before(p.gap.retryAt)
}

// Gap returns where the ledger stands against its consumer's acks.
func (p *Processor) Gap() GapState {
	p.gap.mu.Lock()
	defer p.gap.mu.Unlock()
	return p.gap.state
}

// CheckGapSoon makes the consumer compare the ledger's position with its ack floor again the next
// time it is idle (after a reconnect: a NATS server may have come back with other acks).
func (p *Processor) CheckGapSoon() { p.gap.due.Store(true) }

func (p *Processor) setGap(g GapState) {
	p.gap.mu.Lock()
	p.gap.state = g
	p.gap.mu.Unlock()
	behind := uint64(0)
	if g.AckFloor > g.Position {
		behind = g.AckFloor - g.Position
	}
	p.metrics.gapMessages.Set(float64(behind))
	p.metrics.gapLost.Set(float64(g.Lost))
}

// FillGap compares the ledger's stream position with durable's ack floor and applies again, in
// stream order, every message the consumer acked that the ledger lacks: a power cut can undo a
// commit after its acks reached the server (the consumer keeps them), and JetStream never
// delivers an acked message again, so without this the ledger would say ready with webhooks
// missing until new traffic triggered the in-order catch-up. Messages the stream no longer holds
// are counted (Lost), logged as an error and kept in the state: the reconciler does not call
// itself ready. It runs on the consumer's goroutine (at start, and when idle after a reconnect).
func (p *Processor) FillGap(ctx context.Context, js jetstream.JetStream, durable string, batch int) GapState {
	p.gap.due.Store(false)
	g := GapState{}
	fail := func(err error) GapState {
		p.gap.mu.Lock()
		p.gap.retryAt = time.Now().Add(GapRetry)
		prev := p.gap.state
		p.gap.mu.Unlock()
		p.gap.due.Store(true)
		p.log.Warn("ledger position not compared with the consumer's acks; trying again", zap.Duration("in", GapRetry), zap.Error(err))
		if prev.Ready() {
			// Checked and whole before (this is a reconnect's check): NATS not answering now
			// does not make the ledger lack anything. Kept ready; compared again soon.
			return prev
		}
		g.Err = err.Error()
		p.setGap(g)
		return g
	}
	c, err := js.Consumer(ctx, events.StreamName, durable)
	if err != nil {
		return fail(fmt.Errorf("consumer %s: %w", durable, err))
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fail(fmt.Errorf("consumer %s: %w", durable, err))
	}
	g.AckFloor = info.AckFloor.Stream
	if g.Position, err = p.ledger.Position(ctx); err != nil {
		return fail(err)
	}
	g.Checked = true
	if g.Position >= g.AckFloor {
		p.setGap(g)
		return g
	}
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return fail(fmt.Errorf("stream %s: %w", events.StreamName, err))
	}
	sinfo, err := s.Info(ctx)
	if err != nil {
		return fail(fmt.Errorf("stream %s: %w", events.StreamName, err))
	}
	from := g.Position + 1
	if first := sinfo.State.FirstSeq; first > from {
		g.LostFrom, g.LostTo = from, min(first-1, g.AckFloor)
		g.Lost = g.LostTo - g.LostFrom + 1
		from = first
		p.log.Error("the ledger lacks messages its consumer acked, and the stream no longer holds them: rebuild the ledger from a backup",
			zap.Uint64("ledger_position", g.Position), zap.Uint64("ack_floor", g.AckFloor),
			zap.Uint64("lost_from_seq", g.LostFrom), zap.Uint64("lost_to_seq", g.LostTo), zap.Uint64("stream_first_seq", first))
	}
	p.setGap(g)
	p.log.Warn("the ledger lacks messages its consumer acked (a commit undone, e.g. by a power cut): applying them again from the stream",
		zap.Uint64("ledger_position", g.Position), zap.Uint64("ack_floor", g.AckFloor), zap.Uint64("from_seq", from))
	if from <= g.AckFloor {
		st, err := p.Replay(ctx, js, events.ReplayFrom{Seq: from, Until: g.AckFloor}, batch)
		if err != nil {
			return fail(fmt.Errorf("apply seq %d to %d again: %w", from, g.AckFloor, err))
		}
		p.log.Info("ledger caught up with its consumer's acks", zap.Int("messages", st.Messages), zap.Any("outcomes", st.Outcomes),
			zap.Int("dead_lettered", st.DeadLettered))
	}
	if g.Position, err = p.ledger.Position(ctx); err != nil {
		return fail(err)
	}
	p.setGap(g)
	return g
}
