package ckosim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"knetrecon/internal/checkout"
)

// Faults are the misbehaviours switched on. Rates are shares in [0,1], drawn from the seeded
// generator: the same seed and the same calls give the same faults.
type Faults struct {
	// DropRate is the share of webhooks lost: recorded, never delivered.
	DropRate float64 `json:"drop_rate"`
	// DuplicateRate is the share of webhooks delivered twice.
	DuplicateRate float64 `json:"duplicate_rate"`
	// DelayRate is the share of webhooks held back by up to MaxDelay, which reorders them.
	DelayRate float64 `json:"delay_rate"`
	// MaxDelay bounds a held-back webhook's delay (scaled by TimeScale); default 30s.
	MaxDelay Duration `json:"max_delay"`
	// API5xxRate is the share of API requests answered 500, 502 or 503.
	API5xxRate float64 `json:"api_5xx_rate"`
	// API429Rate is the share of API requests answered 429 with Retry-After.
	API429Rate float64 `json:"api_429_rate"`
	// RetryAfter is the Retry-After sent with an injected 429; default 1s.
	RetryAfter Duration `json:"retry_after"`
	// Latency is added, in real time, to every API answer.
	Latency Duration `json:"latency"`
	// VoidForbidden makes every void answer 403, to test the "cannot void" path.
	VoidForbidden bool `json:"void_forbidden"`
}

// Duration is a time.Duration that reads and writes JSON as "1m30s" (numbers are nanoseconds).
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1m30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	*d = Duration(n)
	return nil
}

// WebhookRecord is one emitted webhook and what became of it.
type WebhookRecord struct {
	EventID   string    `json:"event_id"`
	Type      string    `json:"type"`
	PaymentID string    `json:"payment_id"`
	CreatedOn time.Time `json:"created_on"`
	// Dropped is a webhook lost by a fault: it was never sent.
	Dropped bool `json:"dropped"`
	// Duplicated is a webhook sent twice by a fault.
	Duplicated bool `json:"duplicated"`
	// Delayed is a webhook held back by a fault.
	Delayed bool `json:"delayed"`
	// Delivered is true once some attempt got a 2xx.
	Delivered bool `json:"delivered"`
	// GaveUp is true once every scheduled re-send has failed.
	GaveUp   bool      `json:"gave_up"`
	Attempts []Attempt `json:"attempts"`
	Body     []byte    `json:"-"`
}

// Attempt is one delivery try: when (on the simulator's clock), and the status or error.
type Attempt struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Err    string    `json:"error,omitempty"`
}

type wireEvent struct {
	ID        string                   `json:"id"`
	Type      string                   `json:"type"`
	Version   string                   `json:"version"`
	CreatedOn string                   `json:"created_on"`
	Data      wireEventData            `json:"data"`
	Links     map[string]checkout.Link `json:"_links"`
}

type wireEventData struct {
	ID              string             `json:"id"`
	ActionID        string             `json:"action_id,omitempty"`
	Amount          int64              `json:"amount"`
	Currency        string             `json:"currency"`
	Reference       string             `json:"reference,omitempty"`
	ProcessedOn     string             `json:"processed_on"`
	ResponseCode    string             `json:"response_code,omitempty"`
	ResponseSummary string             `json:"response_summary,omitempty"`
	Balances        *checkout.Balances `json:"balances,omitempty"`
	Metadata        json.RawMessage    `json:"metadata,omitempty"`
	Customer        *checkout.Customer `json:"customer,omitempty"`
}

// emitLocked builds a payment event and queues its delivery, applying the webhook faults.
// act is nil for payment_pending, which carries no action_id.
func (s *Sim) emitLocked(p *payment, typ string, act *action, amount int64) {
	now := s.clock.Now()
	ev := wireEvent{
		ID: s.newID("evt_"), Type: typ, Version: "1.0.1", CreatedOn: now.UTC().Format(time.RFC3339),
		Data: wireEventData{
			ID: p.ID, Amount: amount, Currency: p.Currency, Reference: p.Reference,
			ProcessedOn: stamp(now), Metadata: p.Metadata, Customer: &checkout.Customer{ID: p.Customer.ID},
		},
	}
	ev.Links = map[string]checkout.Link{
		"self":    {Href: p.Base + "/workflows/events/" + ev.ID},
		"subject": {Href: p.Base + "/workflows/events/subject/" + p.ID},
		"payment": {Href: p.Base + "/payments/" + p.ID},
	}
	if act != nil {
		b := p.balances()
		ev.Data.ActionID = act.ID
		ev.Data.ResponseCode = act.ResponseCode
		ev.Data.ResponseSummary = act.ResponseSummary
		ev.Data.ProcessedOn = stamp(act.ProcessedOn)
		ev.Data.Balances = &b
	}
	body, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("ckosim: encode event: %v", err)) // plain structs: cannot happen
	}
	rec := &WebhookRecord{EventID: ev.ID, Type: typ, PaymentID: p.ID, CreatedOn: now, Body: body}

	// Draw every fault each time, so one rate does not shift the others' sequence.
	f := s.faults
	drop, dup, delay, delayBy := s.hookRng.Float64(), s.hookRng.Float64(), s.hookRng.Float64(), s.hookRng.Float64()
	maxDelay := time.Duration(f.MaxDelay)
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	due := now
	switch {
	case s.dropNext > 0:
		s.dropNext--
		rec.Dropped = true
	case drop < f.DropRate:
		rec.Dropped = true
	}
	if !rec.Dropped && delay < f.DelayRate {
		rec.Delayed = true
		due = due.Add(s.scale(time.Duration(1 + delayBy*float64(maxDelay))))
	}
	if !rec.Dropped && dup < f.DuplicateRate {
		rec.Duplicated = true
	}
	s.hooks.add(rec, due)
}

func (s *Sim) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.cfg.TimeScale)
}

type delivery struct {
	seq     uint64
	due     time.Time
	rec     *WebhookRecord
	attempt int // attempts made so far by this copy
}

// deliverer sends webhooks one at a time, in due order, from one goroutine owned by the Sim.
type deliverer struct {
	sim      *Sim
	mu       sync.Mutex
	queue    []*delivery
	recs     []*WebhookRecord
	seq      uint64
	inflight bool
	changed  chan struct{} // closed and replaced on every change, for waitIdle
	wake     chan struct{}
}

func newDeliverer(s *Sim) *deliverer {
	return &deliverer{sim: s, changed: make(chan struct{}), wake: make(chan struct{}, 1)}
}

func (d *deliverer) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *deliverer) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *deliverer) add(rec *WebhookRecord, due time.Time) {
	d.mu.Lock()
	d.recs = append(d.recs, rec)
	if !rec.Dropped && d.sim.cfg.WebhookURL != "" {
		d.pushLocked(&delivery{due: due, rec: rec})
		if rec.Duplicated {
			d.pushLocked(&delivery{due: due.Add(d.sim.scale(time.Second)), rec: rec})
		}
	}
	d.notifyLocked()
	d.mu.Unlock()
	d.poke()
}

func (d *deliverer) pushLocked(x *delivery) {
	d.seq++
	x.seq = d.seq
	d.queue = append(d.queue, x)
}

// nextLocked returns the index of the earliest delivery (ties: first queued), or -1.
func (d *deliverer) nextLocked() int {
	best := -1
	for i, x := range d.queue {
		if best < 0 || x.due.Before(d.queue[best].due) || x.due.Equal(d.queue[best].due) && x.seq < d.queue[best].seq {
			best = i
		}
	}
	return best
}

func (d *deliverer) run(ctx context.Context) {
	clock := d.sim.clock
	for {
		d.mu.Lock()
		i := d.nextLocked()
		if i >= 0 && !d.queue[i].due.After(clock.Now()) {
			x := d.queue[i]
			d.queue = append(d.queue[:i], d.queue[i+1:]...)
			d.inflight = true
			d.notifyLocked()
			d.mu.Unlock()

			d.attempt(ctx, x)

			d.mu.Lock()
			d.inflight = false
			d.notifyLocked()
			d.mu.Unlock()
			continue
		}
		var due <-chan struct{}
		stop := func() {}
		if i >= 0 {
			due, stop = clock.At(d.queue[i].due)
		}
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			stop()
			return
		case <-d.wake:
		case <-due:
		}
		stop()
	}
}

// attempt sends one copy of a webhook and schedules its next re-send when it fails.
func (d *deliverer) attempt(ctx context.Context, x *delivery) {
	cfg := d.sim.cfg
	status, err := d.post(ctx, x.rec.Body)
	now := d.sim.clock.Now()
	at := Attempt{At: now, Status: status}
	if err != nil {
		at.Err = err.Error()
	}
	ok := err == nil && status >= 200 && status <= 299
	d.mu.Lock()
	defer d.mu.Unlock()
	x.rec.Attempts = append(x.rec.Attempts, at)
	x.attempt++
	switch {
	case ok:
		x.rec.Delivered = true
	case ctx.Err() != nil:
		// Closing: the attempt was cut short and nothing more is scheduled.
	case x.attempt <= len(cfg.RetrySchedule):
		x.due = now.Add(d.sim.scale(cfg.RetrySchedule[x.attempt-1]))
		d.pushLocked(x)
	default:
		x.rec.GaveUp = true
	}
}

func (d *deliverer) post(ctx context.Context, body []byte) (int, error) {
	cfg := d.sim.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ckosim-webhooks/1.0")
	req.Header.Set(checkout.SignatureHeader, checkout.Sign([]byte(cfg.WebhookKey), body))
	if cfg.WebhookAuthorization != "" {
		req.Header.Set("Authorization", cfg.WebhookAuthorization)
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (d *deliverer) records() []WebhookRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]WebhookRecord, len(d.recs))
	for i, r := range d.recs {
		out[i] = *r
		out[i].Attempts = append([]Attempt(nil), r.Attempts...)
	}
	return out
}

func (d *deliverer) waitIdle(ctx context.Context) error {
	for {
		d.mu.Lock()
		idle := !d.inflight
		if idle {
			if i := d.nextLocked(); i >= 0 && !d.queue[i].due.After(d.sim.clock.Now()) {
				idle = false
			}
		}
		changed := d.changed
		d.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
