package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/service"
	"knetrecon/internal/store"
)

// FactKeysFile is the file, in the data directory, holding the fact key generated when
// KNETRECON_FACT_KEYS is not set: right for one machine, where every reconciler shares the folder.
const FactKeysFile = "fact.keys"

// factRing returns the fact keys: KNETRECON_FACT_KEYS (or _FILE), else the key in
// KNETRECON_DATA_DIR/fact.keys, generated there on first use.
func (c *Config) factRing() (*checkout.KeyRing, error) {
	if c.FactKeys == "" {
		path := filepath.Join(c.DataDir, FactKeysFile)
		if err := ensureKeyFile(path); err != nil {
			return nil, fmt.Errorf("KNETRECON_FACT_KEYS not set and %w", err)
		}
		keys, err := service.ReadSecretFile(path)
		if err != nil {
			return nil, fmt.Errorf("KNETRECON_FACT_KEYS not set and %s: %w", path, err)
		}
		c.FactKeys, c.FactKeysFile = keys, path
	}
	ring, err := checkout.NewKeyRing(checkout.ParseKeys(c.FactKeys)...)
	if err != nil {
		return nil, fmt.Errorf("KNETRECON_FACT_KEYS: %w", err)
	}
	return ring, nil
}

// ensureKeyFile writes 32 random bytes, hex, to path (owner-only) unless it exists.
func ensureKeyFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil // another process made it first
	}
	if err != nil {
		return fmt.Errorf("create fact key %s: %w", path, err)
	}
	if _, err := f.WriteString(hex.EncodeToString(raw) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write fact key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write fact key %s: %w", path, err)
	}
	return f.Close()
}

// road is what a one-shot command needs to act like the running reconciler: the ledger to read,
// and the stream to publish facts on (the running reconciler's consumer applies them).
type road struct {
	ledger *store.Ledger
	nc     *nats.Conn
	js     jetstream.JetStream
	facts  *reconcile.FactBus
	// selfApply: the command has the webhook keys and applies the stream up to its facts itself.
	selfApply  bool
	ledgerPath string
}

// FactWait is how long a one-shot command waits for its fact to be applied to its ledger.
var FactWait = 15 * time.Second

// openRoad opens the ledger and connects to NATS for a one-shot command that publishes facts.
func openRoad(ctx context.Context, cfg Config) (*road, error) {
	ring, err := cfg.factRing()
	if err != nil {
		return nil, err
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r := &road{ledger: l, ledgerPath: cfg.Ledger}
	if r.nc, r.js, err = connectStream(ctx, cfg); err != nil {
		r.close()
		return nil, err
	}
	var proc *reconcile.Processor
	if len(checkout.ParseKeys(cfg.WebhookKeys)) > 0 {
		// With the webhook keys, the command applies the stream up to its fact itself, as a
		// consumer would, so it answers whether or not a reconciler runs on this ledger. One that
		// runs may apply the fact first: the answer is read from the ledger either way.
		if proc, err = newProcessor(&cfg, l, zap.NewNop(), prometheus.NewRegistry()); err != nil {
			r.close()
			return nil, err
		}
	}
	r.facts = reconcile.NewFactBus(r.js, l, nil, ring, "cli:"+cfg.Consumer.Durable)
	r.facts.Wait = FactWait
	if proc != nil {
		r.facts.CatchUp = func(ctx context.Context, upTo uint64) error {
			pos, err := l.Position(ctx)
			if err != nil || pos >= upTo {
				return err
			}
			_, err = proc.Replay(ctx, r.js, events.ReplayFrom{Seq: pos + 1, Until: upTo}, cfg.BatchSize)
			return err
		}
	}
	r.selfApply = proc != nil
	return r, nil
}

// connectStream connects a one-shot command to NATS, saying plainly when it does not answer.
func connectStream(ctx context.Context, cfg Config) (*nats.Conn, jetstream.JetStream, error) {
	conn, err := cfg.natsConn()
	if err != nil {
		return nil, nil, err
	}
	nc, err := events.Connect(conn)
	if err != nil {
		return nil, nil, err
	}
	if err := events.WaitConnected(ctx, nc, 5*time.Second); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("%w: check KNETRECON_NATS_URL and that NATS runs", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (r *road) close() {
	if r.nc != nil {
		r.nc.Close()
	}
	_ = r.ledger.Close()
}

// applied says where a fact published by a one-shot command stands in this ledger.
func applied(res reconcile.FactResult) string {
	if res.Duplicate {
		return fmt.Sprintf("published before (stream seq %d) and applied then", res.Seq)
	}
	return fmt.Sprintf("applied (stream seq %d)", res.Seq)
}

// ErrNotApplied means a one-shot command's fact is stored on the stream but this ledger did not
// apply it within the wait: the command cannot say what it did.
var ErrNotApplied = errors.New("not applied to this ledger yet")

// outcome is the one reading of a one-shot command's fact: an error unless this ledger applied
// it (a fact stored but not applied here is the exit status 1, with what to do).
func (r *road) outcome(res reconcile.FactResult, err error) (reconcile.FactResult, error) {
	if err != nil {
		return res, err
	}
	if !res.Waiting {
		return res, nil
	}
	why := "is `reconciler run` running on this ledger?"
	if !r.selfApply {
		why = "no `reconciler run` applies this ledger, and this command has no KNETRECON_WEBHOOK_KEYS to apply the stream itself"
	}
	return res, fmt.Errorf("published (stream seq %d), %w (%s) within %s: %s; every reconciler applies it when it runs",
		res.Seq, ErrNotApplied, r.ledgerPath, FactWait, why)
}

// operatorName is who runs a one-shot command, for the audit trail.
func operatorName() string {
	if u := strings.TrimSpace(os.Getenv("USER")); u != "" {
		return u
	}
	return "cli"
}
