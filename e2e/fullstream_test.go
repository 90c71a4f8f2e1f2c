package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
)

// bigPad and hugePad bring a webhook to about 8 and 31 KB.
var bigPad, hugePad = strings.Repeat("knet ", 8<<10/5), strings.Repeat("knet ", 31<<10/5)

// mixedPad pads webhooks to 1.5 KB, or, while big says so, to 8 KB and one in three to 31 KB:
// big webhooks after a history of small ones are what made the stream discard unapplied ones
// before (its guard estimated them at the history's mean size).
func mixedPad(big *atomic.Bool) func(n int) string {
	return func(n int) string {
		switch {
		case !big.Load():
			return padding
		case n%3 == 2:
			return hugePad
		default:
			return bigPad
		}
	}
}

// TestFullStreamMixedSizesTwoReceivers: two receivers publish to one 1 MiB stream, 1.5 KB
// webhooks while the reconciler keeps up (the stream fills with applied history), then 8 and
// 31 KB ones while it is stopped (SIGSTOP), then it is resumed. Applied history makes room, then
// both receivers answer 503 (backlog_full) rather than let the stream discard anything the ledger
// has not applied: every webhook either answered 2xx is in the ledger once, and neither receiver
// ever saw the stream's first sequence pass the ledger's ack floor.
func TestFullStreamMixedSizesTwoReceivers(t *testing.T) {
	s := newStack(t, stackOpts{receiverEnv: map[string]string{"KNETRECON_STREAM_MAX_BYTES": "1048576"}})
	port, adminPort := freePort(t), freePort(t)
	url2 := fmt.Sprintf("http://127.0.0.1:%d", port)
	second := newProc(t, s.dir, "receiver2", map[string]string{
		"KNETRECON_RECEIVER_ADDR":    fmt.Sprintf("127.0.0.1:%d", port),
		"KNETRECON_METRICS_ADDR":     fmt.Sprintf("127.0.0.1:%d", adminPort),
		"KNETRECON_DATA_DIR":         filepath.Join(s.dir, "receiver2"),
		"KNETRECON_NATS_URL":         s.natsURL,
		"KNETRECON_NATS_TOKEN_FILE":  filepath.Join(s.dir, "receiver", "nats.token"),
		"KNETRECON_WEBHOOK_KEYS":     webhookKey,
		"KNETRECON_STREAM_MAX_BYTES": "1048576",
		"KNETRECON_START_TIMEOUT":    "20s",
		"KNETRECON_DURABLE":          "false", // the first receiver's server: its group commit covers only its own 2xx
	})
	second.start()
	waitFor(t, 30*time.Second, "the second receiver ready", func() bool { return status(url2+"/readyz") == 200 })

	rate := scale(100, 150)
	var big atomic.Bool
	mixed := func(l *load) { l.pad = mixedPad(&big) }
	l1 := startLoadWith(t, s.recvURL, rate, "fullstream_r1", "knet", 8, mixed)
	l2 := startLoadWith(t, url2, rate, "fullstream_r2", "knet", 8, mixed)
	time.Sleep(scale(3*time.Second, 20*time.Second)) // the ledger keeps up: the stream fills with applied history
	// While the reconciler is stopped its ack floor stays put: a stream starting past it has
	// discarded answered webhooks the ledger had not applied. (The ledger alone would not show
	// them all: the stopped reconciler's socket may already hold some of them.)
	discarded := uint64(0)
	for round := range scale(1, 3) {
		s.reconciler.send(syscall.SIGSTOP)
		big.Store(true)
		stopped := time.Now()
		time.Sleep(scale(5*time.Second, 40*time.Second))
		info, floor := s.streamInfo(t), s.ackFloor(t, "reconciler")
		if info.State.FirstSeq > floor+1 {
			discarded += info.State.FirstSeq - 1 - floor
		}
		l1.mu.Lock()
		full := l1.statuses[503]
		l1.mu.Unlock()
		big.Store(false)
		s.reconciler.send(syscall.SIGCONT)
		t.Logf("round %d: reconciler stopped %s; stream seq %d to %d, ack floor %d; receiver 1's 503 so far %d",
			round+1, time.Since(stopped).Round(time.Millisecond), info.State.FirstSeq, info.State.LastSeq, floor, full)
		time.Sleep(scale(3*time.Second, 20*time.Second))
	}
	l1.stopLoad()
	l2.stopLoad()
	t1 := settle(t, s.ledger, l1, 60*time.Second)
	t2 := settle(t, s.ledger, l2, 60*time.Second)
	tl := tally{sent: t1.sent + t2.sent, acked: t1.acked + t2.acked, inLedger: t1.inLedger + t2.inLedger, lost: t1.lost + t2.lost,
		wrongMoney: t1.wrongMoney + t2.wrongMoney, extra: t1.extra + t2.extra, deadLetters: t1.deadLetters,
		ackedMoney: t1.ackedMoney + t2.ackedMoney, ledgerMoney: t1.ledgerMoney + t2.ledgerMoney}
	l1.mu.Lock()
	refused := l1.statuses[503]
	bad := l1.statuses[-503]
	l1.mu.Unlock()
	l2.mu.Lock()
	refused += l2.statuses[503]
	bad += l2.statuses[-503]
	l2.mu.Unlock()
	if refused == 0 || bad != 0 {
		t.Fatalf("with the reconciler stopped: %d answers 503 with Retry-After, %d without; want the stream to fill and refuse", refused, bad)
	}
	lostSeen := metric(t, s.recvURL+"/metrics", "knetrecon_stream_lost_unapplied_messages_total") +
		metric(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort), "knetrecon_stream_lost_unapplied_messages_total")
	purged := metric(t, s.recvURL+"/metrics", "knetrecon_stream_room_purged_messages_total") +
		metric(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort), "knetrecon_stream_room_purged_messages_total")
	info := s.streamInfo(t)
	t.Logf("stream: %d bytes of %d, seq %d to %d; applied messages given up to make room: %v", info.State.Bytes, 1<<20, info.State.FirstSeq, info.State.LastSeq, purged)
	if lostSeen != 0 {
		t.Fatalf("the receivers saw %v messages removed before the ledger applied them", lostSeen)
	}
	if purged == 0 {
		t.Fatal("no applied history was given up: the stream never filled")
	}
	what := fmt.Sprintf("a 1 MiB stream, two receivers, 1.5 KB history then 8/31 KB webhooks with the reconciler stopped ×%d for %s (%d answers 503 backlog_full; answered webhooks discarded from the stream before the ledger applied them: %d)",
		scale(1, 3), scale("5 s", "40 s"), refused, discarded)
	if discarded != 0 {
		t.Fatalf("%s: %s", what, tl)
	}
	assertNothingLost(t, what, tl)
}

// ackFloor is the durable consumer's ack floor (stream sequence).
func (s *stack) ackFloor(t *testing.T, durable string) uint64 {
	t.Helper()
	js, err := jetstream.New(s.natsConn(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, events.StreamName, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.AckFloor.Stream
}

// TestNATSStoreDiskFull: the receiver's embedded NATS store (on a tmpfs of its own) runs out of
// disk under load, and the space comes back later. While full, the receiver answers 503 at once
// and /readyz is 503; intake resumes within seconds of the space coming back, in the same
// process; nothing answered 2xx is lost. Needs root to mount the tmpfs.
func TestNATSStoreDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+scale("16m", "64m"), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("the full-store fault needs a small filesystem of its own (root, mount -t tmpfs): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	s := newStack(t, stackOpts{
		receiverEnv:   map[string]string{"KNETRECON_DATA_DIR": dir, "KNETRECON_STREAM_MAX_BYTES": scale("4194304", "16777216")},
		reconcilerEnv: map[string]string{"KNETRECON_DATA_DIR": dir},
	})
	l := startLoad(t, s.recvURL, 100)
	time.Sleep(2 * time.Second)
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	full := time.Now()
	waitFor(t, 15*time.Second, "the receiver's /readyz 503 (NATS store's disk full)", func() bool { return status(s.recvURL+"/readyz") == 503 })
	notReady := time.Since(full)
	time.Sleep(500 * time.Millisecond) // answers already on their way when the disk filled
	quiet := time.Now()
	sent := func() int { l.mu.Lock(); defer l.mu.Unlock(); return l.sent }
	before := sent()
	time.Sleep(scale(5*time.Second, 5*time.Minute))
	answered := sent() - before
	if n := l.okSince(quiet); n != 0 {
		t.Fatalf("%d webhooks got a 2xx with the NATS store's disk full", n)
	}
	slow := metric(t, s.recvURL+"/metrics", `knetrecon_receiver_requests_total{outcome="store_failing"}`)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitFor(t, 30*time.Second, "a 2xx after the space came back", func() bool { return l.okSince(freed) > 0 })
	back := time.Since(freed)
	waitFor(t, 10*time.Second, "the receiver ready again", func() bool { return status(s.recvURL+"/readyz") == 200 })
	time.Sleep(scale(time.Second, 10*time.Second))
	tl := settle(t, s.ledger, l, 60*time.Second)
	t.Logf("NATS store full: /readyz 503 %s after; %d webhooks answered while full (%v store_failing in all); 2xx again %s after the space came back",
		notReady.Round(time.Millisecond), answered, slow, back.Round(time.Millisecond))
	if back > 10*time.Second {
		t.Fatalf("intake came back %s after the space did, want within seconds", back)
	}
	if rate := float64(answered) / scale(5.0, 300.0); rate < 50 {
		t.Fatalf("%.0f answers/s while full at 100/s sent: the 503s are not at once", rate)
	}
	assertNothingLost(t, fmt.Sprintf("the receiver's NATS store's disk full for %s (503 at once, /readyz 503 after %s, 2xx again %s after the space came back, no restart)",
		scale("5 s", "5 min"), notReady.Round(time.Millisecond), back.Round(time.Millisecond)), tl)
}
