package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// IsStoreFailure reports whether err says the NATS store cannot write: JetStream's storage
// limits (insufficient resources, the account's or the server's storage exhausted) or a write
// error of the store. A stream at its own MaxBytes is not one (that is ErrStreamFull: the
// ledgers' backlog), nor is NATS unreachable.
func IsStoreFailure(err error) bool {
	if errors.Is(err, ErrStoreFailing) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsErrAccountResourcesExceeded, jsErrInsufficientResources, jsErrStorageResourcesExceeded:
		return true
	case jsErrStreamStoreFailed:
		for _, limit := range streamLimits {
			if strings.Contains(apiErr.Description, limit) {
				return false
			}
		}
		return true
	}
	return false
}

// ErrStoreFailing means the NATS store refused writes a moment ago (its disk full, a write
// error, JetStream's storage limits): a webhook is refused at once instead of waiting for a
// publish timeout. It wraps ErrNotStored.
var ErrStoreFailing = fmt.Errorf("%w: the NATS store refuses writes", ErrNotStored)

// StoreCircuit keeps the receiver from waiting on a NATS store that cannot write. It opens when a
// publish fails with a store failure, or when its probe says the store cannot write (the
// embedded server's store is looked at directly, every Every); while it is open webhooks are
// refused at once and the receiver is not ready. It closes when the probe finds the store taking
// writes again, at least Hold after a publish opened it, so that intake resumes by itself.
type StoreCircuit struct {
	cfg StoreCircuitConfig

	failing atomic.Bool
	kick    chan struct{}

	mu       sync.Mutex
	since    time.Time
	byProbe  bool // opened by the probe (it alone decides), not by a publish
	reason   string
	epoch    context.Context // canceled when the circuit opens: publishes waiting give up
	endEpoch context.CancelCauseFunc

	gauge prometheus.Gauge
}

// StoreCircuitConfig configures a StoreCircuit.
type StoreCircuitConfig struct {
	// Probe returns nil while the store (as far as it can tell) takes writes, and why not
	// otherwise. It may repair the store (EmbeddedStore restarts JetStream once the disk has room).
	Probe func(context.Context) error
	// Watch probes every Every even while the circuit is closed (a cheap, local probe: the
	// embedded server), so that a failing store is seen before publishes time out. Otherwise the
	// probe runs only while the circuit is open, or when a publish timed out.
	Watch bool
	// Every is how often the probe runs.
	Every time.Duration
	// Hold is the least time the circuit stays open after a publish opened it.
	Hold time.Duration
	// OnChange, when set, hears of every opening and closing (failing, why, and for closing how
	// long it lasted).
	OnChange func(failing bool, reason string, lasted time.Duration)
}

// NewStoreCircuit returns a closed circuit; Run probes. Its gauge is registered with reg.
func NewStoreCircuit(cfg StoreCircuitConfig, reg prometheus.Registerer) *StoreCircuit {
	c := &StoreCircuit{cfg: cfg, kick: make(chan struct{}, 1),
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_receiver_store_failing",
			Help: "1 while the NATS store refuses writes (disk full, write error, JetStream storage limits): webhooks are answered 503 at once and /readyz is 503."})}
	c.epoch, c.endEpoch = context.WithCancelCause(context.Background())
	reg.MustRegister(c.gauge)
	return c
}

// Failing reports whether the store refuses writes now, and why.
func (c *StoreCircuit) Failing() (bool, string) {
	if !c.failing.Load() {
		return false, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failing.Load(), c.reason
}

// Bind returns ctx canceled with ErrStoreFailing as soon as the circuit opens, so that a publish
// waiting on a store that just failed gives up at once. Call the returned stop when done.
func (c *StoreCircuit) Bind(ctx context.Context) (context.Context, func()) {
	c.mu.Lock()
	epoch := c.epoch
	c.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(epoch, func() { cancel(ErrStoreFailing) })
	return ctx, func() { stop(); cancel(nil) }
}

// Report hears of a failed publish: a store failure opens the circuit, a timeout makes it probe
// at once.
func (c *StoreCircuit) Report(err error) {
	switch {
	case errors.Is(err, ErrStoreFailing):
	case IsStoreFailure(err):
		c.open(err.Error(), false)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *StoreCircuit) open(reason string, byProbe bool) {
	c.mu.Lock()
	if c.failing.Load() {
		c.reason = reason
		c.mu.Unlock()
		return
	}
	c.failing.Store(true)
	c.since, c.byProbe, c.reason = time.Now(), byProbe, reason
	c.endEpoch(ErrStoreFailing)
	c.mu.Unlock()
	c.gauge.Set(1)
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(true, reason, 0)
	}
}

func (c *StoreCircuit) close() {
	c.mu.Lock()
	if !c.failing.Load() || (!c.byProbe && time.Since(c.since) < c.cfg.Hold) {
		c.mu.Unlock()
		return
	}
	c.failing.Store(false)
	lasted, reason := time.Since(c.since), c.reason
	c.epoch, c.endEpoch = context.WithCancelCause(context.Background())
	c.mu.Unlock()
	c.gauge.Set(0)
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(false, reason, lasted)
	}
}

// Run probes until ctx ends: every Every (while open, or always with Watch), and at once after a
// publish timed out.
func (c *StoreCircuit) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !c.cfg.Watch && !c.failing.Load() {
				continue
			}
		case <-c.kick:
		}
		pctx, cancel := context.WithTimeout(ctx, max(c.cfg.Every, 2*time.Second))
		err := c.cfg.Probe(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			c.open(err.Error(), true)
		default:
			c.close()
		}
	}
}

// EmbeddedStore probes the embedded server's store for a StoreCircuit, and repairs it. nats-server
// keeps a store write error (a full disk) for good: every later publish to the stream gets no
// answer at all until JetStream is restarted. So once the disk has MinFree bytes free again,
// Probe restarts JetStream in this process (nats-server's own reload path: ShutdownJetStream,
// then ReloadOptions), which reloads the stream from disk and forgets the error. The NATS
// connections stay up; what was acknowledged before is on disk (fsynced before its 2xx).
type EmbeddedStore struct {
	// Server is the embedded server, Config what it was started with (RunEmbedded).
	Server *server.Server
	Config EmbeddedConfig
	// MinFree is the free space the store's file system needs for the store to count as writable
	// (room for a few of the largest webhooks and the store's own files).
	MinFree int64
	// OnRestart, when set, is called after JetStream was restarted (with the write error that
	// caused it), before the circuit closes.
	OnRestart func(cause string)

	lastRestart time.Time
}

// restartPause bounds how often Probe restarts JetStream while the store keeps failing.
const restartPause = 2 * time.Second

// Probe returns nil when the stream has no write error and its file system has MinFree bytes free,
// restarting JetStream first when the error is there but the space is back.
func (e *EmbeddedStore) Probe(ctx context.Context) error {
	free, known := freeBytes(e.Config.StoreDir)
	if known && free < e.MinFree {
		return fmt.Errorf("the NATS store's file system has %d bytes free, under %d", free, e.MinFree)
	}
	werr := e.writeError()
	if werr == "" {
		return nil
	}
	if !strings.Contains(werr, "write error") && !strings.Contains(werr, "not enabled") {
		return errors.New(werr)
	}
	if time.Since(e.lastRestart) < restartPause {
		return errors.New(werr)
	}
	e.lastRestart = time.Now()
	if err := RestartJetStream(e.Server, e.Config); err != nil {
		return fmt.Errorf("%s; restarting JetStream: %w", werr, err)
	}
	if e.OnRestart != nil {
		e.OnRestart(werr)
	}
	if again := e.writeError(); again != "" {
		return errors.New(again)
	}
	return ctx.Err()
}

// writeError is the embedded server's own health report on the stream: "" when healthy.
func (e *EmbeddedStore) writeError() string {
	if !e.Server.JetStreamEnabled() {
		return "JetStream not enabled on the embedded server"
	}
	h := e.Server.Healthz(&server.HealthzOptions{Account: e.Server.GlobalAccount().Name, Stream: StreamName, Details: true})
	var errs []string
	for _, he := range h.Errors {
		errs = append(errs, he.Error)
	}
	return strings.Join(errs, "; ")
}

// AccountStoreProbe is the probe for an external NATS, whose disk the receiver cannot see: it
// fails while the account's JetStream storage is at its limit, and passes otherwise (a store
// that fails without saying so is seen again by the next publish).
func AccountStoreProbe(js jetstream.JetStream) func(context.Context) error {
	return func(ctx context.Context) error {
		info, err := js.AccountInfo(ctx)
		if err != nil {
			return nil // NATS unreachable is not the store: /readyz says so on its own
		}
		tiers := map[string]jetstream.Tier{"": info.Tier}
		for name, t := range info.Tiers {
			tiers[name] = t
		}
		for name, t := range tiers {
			if t.Limits.MaxStore > 0 && t.Store >= uint64(t.Limits.MaxStore) {
				if name != "" {
					name = " (tier " + name + ")"
				}
				return fmt.Errorf("the NATS account's JetStream storage%s is full: %d of %d bytes", name, t.Store, t.Limits.MaxStore)
			}
		}
		return nil
	}
}
