package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"knetrecon/internal/events"
)

// cmdBackup copies the ledger to file with SQLite's online backup (the reconciler may run on) and
// prints the stream position the copy holds.
func cmdBackup(ctx context.Context, cfg Config, operands []string, asJSON bool, stdout io.Writer, fail func(error) int) int {
	if len(operands) != 1 {
		return fail(badUsage("%s", "usage: reconciler backup FILE [--json]"))
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	start := time.Now()
	seq, err := l.Backup(ctx, operands[0])
	if err != nil {
		return fail(err)
	}
	took := time.Since(start).Round(time.Millisecond)
	if asJSON {
		return exitOf(writeJSON(stdout, map[string]any{"backup": operands[0], "stream_seq": seq, "seconds": took.Seconds()}), fail)
	}
	fmt.Fprintf(stdout, "ledger %s backed up to %s in %s: it holds the stream up to seq %d; `reconciler rebuild --from-backup %s` replays from seq %d\n",
		cfg.Ledger, operands[0], took, seq, operands[0], seq+1)
	return 0
}

// RebuildStats is what `reconciler rebuild` did.
type RebuildStats struct {
	Ledger     string  `json:"ledger"`
	FromBackup string  `json:"from_backup,omitempty"`
	FromSeq    uint64  `json:"from_seq"`
	ToSeq      uint64  `json:"to_seq"`
	Messages   int     `json:"messages"`
	Facts      int     `json:"facts"`
	Payments   int64   `json:"payments"`
	Seconds    float64 `json:"seconds"`
}

// cmdRebuild makes the ledger anew from the stream (or from a backup and the stream beyond it)
// beside KNETRECON_LEDGER, then moves it into place. The reconciler must be stopped; a ledger
// already there is kept as <ledger>.replaced-<time> with --force, else refused.
func cmdRebuild(ctx context.Context, cfg Config, log *zap.Logger, backup string, force, asJSON bool, stdout io.Writer, fail func(error) int) int {
	if _, err := os.Stat(cfg.Ledger); err == nil && !force {
		return fail(fmt.Errorf("ledger %s exists: stop the reconciler and give --force to replace it (it is kept as %s.replaced-<time>), or point KNETRECON_LEDGER at a new file", cfg.Ledger, cfg.Ledger))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	start := time.Now()
	tmp := cfg.Ledger + ".rebuild"
	for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		_ = os.Remove(f)
	}
	st := RebuildStats{Ledger: cfg.Ledger, FromBackup: backup}
	if backup != "" {
		if err := copyFile(backup, tmp); err != nil {
			return fail(fmt.Errorf("--from-backup: %w", err))
		}
	}
	work := cfg
	work.Ledger = tmp
	l, err := createLedger(ctx, work)
	if err != nil {
		return fail(err)
	}
	pos, err := l.Position(ctx)
	if err != nil {
		l.Close()
		return fail(err)
	}
	if backup != "" && pos == 0 {
		l.Close()
		return fail(fmt.Errorf("--from-backup %s records no stream position: it was not made by `reconciler backup` of this release", backup))
	}
	st.FromSeq = pos + 1
	nc, js, err := connectStream(ctx, cfg)
	if err != nil {
		l.Close()
		return fail(err)
	}
	defer nc.Close()
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		l.Close()
		return fail(fmt.Errorf("stream %s: %w", events.StreamName, err))
	}
	info, err := s.Info(ctx)
	if err != nil {
		l.Close()
		return fail(err)
	}
	if first := info.State.FirstSeq; info.State.Msgs > 0 && first > st.FromSeq {
		l.Close()
		how := "a backup (`reconciler backup`) taken at seq " + fmt.Sprint(first-1) + " or later, with --from-backup"
		return fail(fmt.Errorf("the stream starts at seq %d (older messages are past KNETRECON_STREAM_MAX_AGE or MaxBytes), but this ledger needs seq %d onwards: rebuild from %s",
			first, st.FromSeq, how))
	}
	proc, err := newProcessor(&cfg, l, log.Named("rebuild"), prometheus.NewRegistry())
	if err != nil {
		l.Close()
		return fail(err)
	}
	rs, err := proc.Replay(ctx, js, events.ReplayFrom{Seq: st.FromSeq}, max(cfg.BatchSize, 1024))
	if err != nil {
		l.Close()
		return fail(fmt.Errorf("rebuild: %w (the partial ledger %s is left for a look; nothing replaced)", err, tmp))
	}
	st.Messages, st.Facts = rs.Messages, rs.Facts
	st.ToSeq, _ = l.Position(ctx)
	tot, err := l.Totals(ctx)
	if err == nil {
		st.Payments = tot.Payments
	}
	if err := l.Close(); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(cfg.Ledger); err == nil {
		old := cfg.Ledger + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(cfg.Ledger, old); err != nil {
			return fail(err)
		}
		for _, suf := range []string{"-wal", "-shm"} {
			_ = os.Rename(cfg.Ledger+suf, old+suf)
		}
	}
	if err := os.Rename(tmp, cfg.Ledger); err != nil {
		return fail(err)
	}
	st.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
	if asJSON {
		return exitOf(writeJSON(stdout, st), fail)
	}
	fmt.Fprintf(stdout, "ledger %s rebuilt from seq %d to %d (%d messages, %d of them facts; %d payments) in %.1fs\n",
		st.Ledger, st.FromSeq, st.ToSeq, st.Messages, st.Facts, st.Payments, st.Seconds)
	return 0
}

// copyFile copies a backup into place for a rebuild, synced.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // a ledger: the service user's alone
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// cmdDigest prints the ledger's digest: two ledgers of the same stream, applied as far, print the
// same one (a replica check: payments, postings, discrepancies).
func cmdDigest(ctx context.Context, cfg Config, asJSON bool, stdout io.Writer, fail func(error) int) int {
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	d, err := l.Digest(ctx)
	if err != nil {
		return fail(err)
	}
	if asJSON {
		return exitOf(writeJSON(stdout, d), fail)
	}
	// Captured and refunded are sums over every currency: minor units, a check figure, not money.
	fmt.Fprintf(stdout, "%s  payments %d  postings %d  discrepancies %d  captured %d  refunded %d minor units, all currencies  (stream seq %d)\n",
		d.SHA256, d.Payments, d.Postings, d.Discrepancies, d.Captured, d.Refunded, d.StreamSeq)
	return 0
}
