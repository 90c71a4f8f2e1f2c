package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
	"knetrecon/internal/faultfs"
	"knetrecon/internal/store"
)

// What TestPowerCut holds the durable modes (default and KNETRECON_NATS_SYNC_ALWAYS) to: the
// ledger commits durably before its acks (synchronous=FULL) and start-up applies again, from the
// ledger's own position, what its consumer acked and a cut undid.
var (
	// powerCutStreamMustKeep: every webhook answered 2xx is in the stream after every cut.
	powerCutStreamMustKeep = true
	// powerCutLedgerMustKeep: every webhook answered 2xx is in the ledger after every cut, once
	// the reconciler has caught up without new traffic.
	powerCutLedgerMustKeep = true
)

// TestPowerCut: the receiver's data directory (its embedded NATS store) and the ledger on a file
// system that loses, at a cut, every write no fsync made durable (internal/faultfs). Cuts under
// load and in quiet moments (everything answered already applied), in the three modes:
// the default (a 2xx after a shared fsync), KNETRECON_NATS_SYNC_ALWAYS=true, and
// KNETRECON_DURABLE=false, which must lose answered webhooks (or the harness saw no cut). After
// each cut everything restarts and the reconciler catches up with no new traffic; then the
// webhooks answered 2xx are looked up in the stream (by Nats-Msg-Id) and in the ledger.
func TestPowerCut(t *testing.T) {
	if err := faultfs.Available(); err != nil {
		t.Skipf("the power-cut case needs FUSE: %v", err)
	}
	modes := []struct {
		name    string
		env     map[string]string
		durable bool
	}{
		{"default", nil, true},
		{"sync-always", map[string]string{"KNETRECON_NATS_SYNC_ALWAYS": "true"}, true},
		{"not-durable", map[string]string{"KNETRECON_DURABLE": "false"}, false},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { powerCuts(t, m.name, m.env, m.durable) })
	}
}

// powerTally is what became of the webhooks answered 2xx, counted after a cut and a catch-up.
type powerTally struct {
	acked         int // answered 2xx, every load so far
	missingStream int // of those, not in the stream
	missingLedger int // of those, not in the ledger
	ledgerNotDue  int // of those missing from the ledger, also missing from the stream
	wrongMoney    int
	deadLetters   int
}

func powerCuts(t *testing.T, mode string, env map[string]string, durable bool) {
	backing, mnt := t.TempDir(), t.TempDir()
	ffs, err := faultfs.Mount(backing, mnt)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "not permitted") {
			t.Skipf("the power-cut case needs to mount a FUSE file system, not permitted here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ffs.Unmount(); err != nil {
			t.Error(err)
		}
	})
	dataDir := filepath.Join(mnt, "receiver")
	renv := map[string]string{"KNETRECON_DATA_DIR": dataDir}
	maps.Copy(renv, env)
	s := newStack(t, stackOpts{ledgerDir: mnt, receiverEnv: renv,
		reconcilerEnv: map[string]string{"KNETRECON_DATA_DIR": dataDir}})

	cuts, rate, phase := scale(2, 10), scale(200, 250), scale(2*time.Second, 8*time.Second)
	var (
		loads       []*load
		last        powerTally
		worstLedger int
	)
	for i := range cuts {
		quiet := i%2 == 1
		prefix := fmt.Sprintf("%s_cut%02d", strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_"), i)
		l := startLoadAs(t, s.recvURL, rate, prefix, "knet")
		loads = append(loads, l)
		time.Sleep(phase)
		when := "under load"
		if quiet {
			when = "quiet"
			l.stopLoad()
			// A quiet moment: every answered webhook applied and acked before the power goes.
			waitFor(t, 30*time.Second, "every answered webhook in the ledger before the quiet cut", func() bool {
				tl, err := readLedger(s.ledger, l)
				return err == nil && tl.lost == 0
			})
			if !consumerIdle(t, s, dataDir, 15*time.Second) {
				t.Fatal("the reconciler still had messages in flight before the quiet cut")
			}
		}
		ffs.Cut()
		killTogether(s.receiver, s.reconciler) // a power cut kills them too
		l.stopLoad()
		if err := ffs.Remount(); err != nil {
			t.Fatal(err)
		}
		defs := definitions(filepath.Join(dataDir, "nats"))
		start := time.Now()
		s.startReceiver()
		s.startReconciler()
		caughtUp := consumerIdle(t, s, dataDir, scale(30*time.Second, 60*time.Second))
		took := time.Since(start)
		last = countPowerCut(t, s, dataDir, loads)
		worstLedger = max(worstLedger, last.missingLedger)
		msg := fmt.Sprintf("power cut %d of %d, %s mode, %s (%d/s): 2xx so far %d; missing from the stream %d; "+
			"missing from the ledger after catch-up without new traffic %d (%d of them still in the stream); "+
			"money twice or wrong %d; dead letters %d; restarted and caught up in %s; on disk after the cut: %s",
			i+1, cuts, mode, when, rate, last.acked, last.missingStream, last.missingLedger,
			last.missingLedger-last.ledgerNotDue, last.wrongMoney, last.deadLetters, took.Round(100*time.Millisecond), defs)
		if !caughtUp {
			msg += " (NOT caught up: the consumer still had pending messages)"
		}
		t.Log(msg)
		fmt.Printf("FIGURE %s\n", msg)
	}
	summary := fmt.Sprintf("power cuts ×%d (%d under load, %d quiet), %s mode, %d/s: 2xx %d; missing from the stream %d; "+
		"missing from the ledger after catch-up without new traffic %d (worst after one cut %d)",
		cuts, (cuts+1)/2, cuts/2, mode, rate, last.acked, last.missingStream, last.missingLedger, worstLedger)
	t.Log(summary)
	fmt.Printf("FIGURE %s\n", summary)

	if last.acked == 0 {
		t.Fatal("no webhook got a 2xx: the load never reached the receiver")
	}
	if !durable {
		if last.missingStream == 0 {
			t.Fatalf("%s: nothing answered was lost from the stream in the not-durable mode: the harness did not see a cut", summary)
		}
		return
	}
	if powerCutStreamMustKeep && last.missingStream != 0 {
		t.Errorf("%s: %d webhooks answered 2xx are not in the stream", summary, last.missingStream)
	}
	if powerCutLedgerMustKeep && worstLedger != 0 {
		t.Errorf("%s: webhooks answered 2xx missing from the caught-up ledger", summary)
	}
}

// definitions says what the power cut left of the stream's and the consumer's definitions in an
// embedded server's store (their meta.inf files), before anything restarts.
func definitions(storeDir string) string {
	size := func(pattern string) string {
		m, _ := filepath.Glob(filepath.Join(storeDir, "jetstream", "*", "streams", events.StreamName, pattern))
		if len(m) == 0 {
			return "none"
		}
		fi, err := os.Stat(m[0])
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%d B", fi.Size())
	}
	return fmt.Sprintf("stream meta.inf %s, consumer meta.inf %s",
		size("meta.inf"), size(filepath.Join("obs", events.DefaultConsumerConfig().Durable, "meta.inf")))
}

// killTogether kill -9s the processes at once, as the power does.
func killTogether(ps ...*proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.kill)
	}
	wg.Wait()
}

// embeddedJS connects to the stack's embedded NATS with the token in dataDir.
func embeddedJS(t *testing.T, s *stack, dataDir string) (jetstream.JetStream, func()) {
	t.Helper()
	tok, err := events.ReadEmbeddedToken(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.natsURL, nats.Token(tok), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return js, nc.Close
}

// consumerIdle waits (up to d) until the reconciler's durable consumer has nothing pending and
// nothing unacknowledged: the ledger holds everything the stream delivered.
func consumerIdle(t *testing.T, s *stack, dataDir string, d time.Duration) bool {
	t.Helper()
	js, closeNC := embeddedJS(t, s, dataDir)
	defer closeNC()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := js.Consumer(ctx, events.StreamName, events.DefaultConsumerConfig().Durable)
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				cancel()
				return true
			}
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// countPowerCut looks every webhook answered 2xx so far up in the stream and in the ledger.
func countPowerCut(t *testing.T, s *stack, dataDir string, loads []*load) powerTally {
	t.Helper()
	inStream := streamMsgIDs(t, s, dataDir)
	inLedger := ledgerEventIDs(t, s.ledger)
	var pt powerTally
	for _, l := range loads {
		l.mu.Lock()
		for id := range l.acked {
			pt.acked++
			if !inStream[id] {
				pt.missingStream++
			}
			if !inLedger[id] {
				pt.missingLedger++
				if !inStream[id] {
					pt.ledgerNotDue++
				}
			}
		}
		l.mu.Unlock()
		tl, err := readLedger(s.ledger, l)
		if err != nil {
			t.Fatalf("read the ledger: %v", err)
		}
		pt.wrongMoney += tl.wrongMoney
		pt.deadLetters = tl.deadLetters
	}
	return pt
}

// streamMsgIDs reads every message id (Nats-Msg-Id) in the stream, headers only.
func streamMsgIDs(t *testing.T, s *stack, dataDir string) map[string]bool {
	t.Helper()
	js, closeNC := embeddedJS(t, s, dataDir)
	defer closeNC()
	return streamIDs(t, js)
}

// streamIDs reads every message id (Nats-Msg-Id) in the stream through js, headers only.
func streamIDs(t *testing.T, js jetstream.JetStream) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatalf("stream %s: %v", events.StreamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	if info.State.Msgs == 0 {
		return ids
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("read the stream: %v", err)
		}
		done := false
		for msg := range batch.Messages() {
			ids[msg.Headers().Get(jetstream.MsgIDHeader)] = true
			if md, err := msg.Metadata(); err == nil && md.Sequence.Stream >= info.State.LastSeq {
				done = true
			}
		}
		// An empty fetch is not the end: a cluster just restarted may answer slowly (a stream
		// leader being elected). The end is the last sequence the stream said it holds.
		if done {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("reading the stream took over a minute: %v", ctx.Err())
	}
	return ids
}

// ledgerEventIDs is every event id in the ledger.
func ledgerEventIDs(t *testing.T, path string) map[string]bool {
	t.Helper()
	db, err := sql.Open("sqlite3", store.DSN(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id FROM events`)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
