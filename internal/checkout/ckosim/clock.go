package ckosim

import (
	"sync"
	"time"
)

// Clock is the simulator's time source. The seven-minute expiry and the webhook retry schedule
// are measured on it, so tests move a FakeClock instead of waiting.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// At returns a channel closed once the clock reads t or later, and a function releasing it.
	At(t time.Time) (<-chan struct{}, func())
}

// Advancer is a Clock that can be moved forward: Sim.Advance uses it.
type Advancer interface {
	Advance(d time.Duration)
}

// FakeClock is a Clock that only moves when told. It is safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[*fakeWaiter]struct{}
}

type fakeWaiter struct {
	t  time.Time
	ch chan struct{}
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, waiters: map[*fakeWaiter]struct{}{}}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At returns a channel closed when the fake time reaches t (at once if it already has).
func (c *FakeClock) At(t time.Time) (<-chan struct{}, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &fakeWaiter{t: t, ch: make(chan struct{})}
	if !t.After(c.now) {
		close(w.ch)
		return w.ch, func() {}
	}
	c.waiters[w] = struct{}{}
	return w.ch, func() {
		c.mu.Lock()
		delete(c.waiters, w)
		c.mu.Unlock()
	}
}

// Advance moves the fake time forward by d and releases every waiter now due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for w := range c.waiters {
		if !w.t.After(c.now) {
			close(w.ch)
			delete(c.waiters, w)
		}
	}
}

// realClock is wall time plus an offset that Advance grows, so that the control API can jump a
// running simulator forward (for instance past a webhook retry) without a fake clock.
type realClock struct {
	mu     sync.Mutex
	offset time.Duration
}

// NewRealClock returns the wall clock; Advance on it adds a lasting offset.
func NewRealClock() Clock { return &realClock{} }

// Now is the wall time plus the offset.
func (c *realClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// At fires when the wall clock, offset included, reaches t; Sim.Advance wakes waiters itself.
func (c *realClock) At(t time.Time) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	timer := time.AfterFunc(t.Sub(c.Now()), func() { close(ch) })
	return ch, func() { timer.Stop() }
}

// Advance grows the offset.
func (c *realClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
