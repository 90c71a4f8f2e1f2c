package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// GroupSync makes webhooks stored in the embedded server durable (fsync) before they are
// answered, with one fsync shared by every webhook acknowledged meanwhile (group commit).
//
// Why it works: for a single-server (R1) stream, nats-server writes each message into its
// message block file before it sends the PubAck ("flush in place"); only the fsync is left to
// its two-minute timer. So once a PubAck is in hand, an fsync of the stream's newest block files,
// started after it, puts that message on disk. Every webhook waiting when an fsync starts is
// answered when it ends; those arriving during it share the next one. TestGroupSyncAfterPubAck
// keeps the assumption honest across nats-server upgrades.
type GroupSync struct {
	dir  string
	reqs chan chan error
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex // guards files and last (the sync goroutine's, and Close's)
	files map[int]*os.File
	last  int // the highest block index synced
	dirFD *os.File

	rounds    atomic.Int64
	closeOnce sync.Once
}

// Rounds counts the fsync rounds so far (each shared by every webhook waiting when it started).
func (g *GroupSync) Rounds() int64 { return g.rounds.Load() }

// StreamMsgsDir finds the folder holding the stream's message blocks under an embedded server's
// JetStream store directory (<store>/jetstream/<account>/streams/<stream>/msgs).
func StreamMsgsDir(storeDir string) (string, error) {
	dirs, err := filepath.Glob(filepath.Join(storeDir, "jetstream", "*", "streams", StreamName, "msgs"))
	if err != nil {
		return "", err
	}
	if len(dirs) != 1 {
		return "", fmt.Errorf("stream %s: %d message folders under %s, want 1", StreamName, len(dirs), storeDir)
	}
	return dirs[0], nil
}

// NewGroupSync starts syncing the message blocks in dir. Close stops it.
func NewGroupSync(dir string) (*GroupSync, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open stream folder: %w", err)
	}
	g := &GroupSync{dir: dir, reqs: make(chan chan error, 1<<16), stop: make(chan struct{}), done: make(chan struct{}),
		files: map[int]*os.File{}, dirFD: d}
	go g.run()
	return g, nil
}

// ErrSyncClosed is returned by Sync once the GroupSync is closed.
var ErrSyncClosed = errors.New("group sync closed")

// Sync returns once everything the stream acknowledged before the call is on disk.
func (g *GroupSync) Sync(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case g.reqs <- done:
	case <-g.stop:
		return ErrSyncClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-g.done:
		select {
		case err := <-done:
			return err
		default:
			return ErrSyncClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *GroupSync) run() {
	defer close(g.done)
	var batch []chan error
	for {
		select {
		case <-g.stop:
			for {
				select {
				case r := <-g.reqs:
					r <- ErrSyncClosed
				default:
					return
				}
			}
		case r := <-g.reqs:
			batch = append(batch[:0], r)
		}
		for more := true; more; {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				more = false
			}
		}
		err := g.syncBlocks()
		g.rounds.Add(1)
		for _, r := range batch {
			r <- err
		}
	}
}

// syncBlocks fsyncs every block file from the last one synced on (blocks before it are complete
// and were synced when they were the last), and the folder when a block was added.
func (g *GroupSync) syncBlocks() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return fmt.Errorf("list stream blocks: %w", err)
	}
	newest := g.last
	var idx []int
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".blk") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(name, ".blk"))
		if err != nil || n < g.last {
			continue
		}
		idx = append(idx, n)
		newest = max(newest, n)
	}
	for _, n := range idx {
		f, ok := g.files[n]
		if !ok {
			if f, err = os.Open(filepath.Join(g.dir, strconv.Itoa(n)+".blk")); err != nil {
				if os.IsNotExist(err) {
					continue // removed meanwhile (the stream discarded it)
				}
				return fmt.Errorf("open stream block: %w", err)
			}
			g.files[n] = f
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync stream block %d: %w", n, err)
		}
	}
	if newest > g.last || g.last == 0 {
		if err := g.dirFD.Sync(); err != nil {
			return fmt.Errorf("fsync stream folder: %w", err)
		}
	}
	for n, f := range g.files {
		if n < newest {
			_ = f.Close()
			delete(g.files, n)
		}
	}
	g.last = newest
	return nil
}

// Forget closes the block files kept open between rounds: the next round opens them again. Call
// it after JetStream reloaded the stream (RestartJetStream), so that no fsync goes to a file the
// store has let go of.
func (g *GroupSync) Forget() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, f := range g.files {
		_ = f.Close()
		delete(g.files, n)
	}
	g.last = 0
}

// Close stops the syncing goroutine (waiting callers get ErrSyncClosed) and closes its files.
// Calling it again does nothing.
func (g *GroupSync) Close() error {
	var first bool
	g.closeOnce.Do(func() { first = true; close(g.stop) })
	if !first {
		return nil
	}
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, f := range g.files {
		_ = f.Close()
		delete(g.files, n)
	}
	return g.dirFD.Close()
}
