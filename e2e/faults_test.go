package e2e

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillNineUnderLoad: kill -9 of the reconciler and of the receiver (with the embedded NATS in
// it) again and again under steady signed load. Every webhook that got a 2xx is in the ledger
// exactly once, with its money once.
func TestKillNineUnderLoad(t *testing.T) {
	s := newStack(t, stackOpts{})
	l := startLoad(t, s.recvURL, scale(100, 200))
	kills := append(make([]string, 0, 60), repeat("reconciler", scale(3, 50))...)
	kills = append(kills, repeat("receiver", scale(2, 10))...)
	rand.Shuffle(len(kills), func(i, j int) { kills[i], kills[j] = kills[j], kills[i] })
	for i, who := range kills {
		time.Sleep(time.Duration(300+rand.IntN(scale(900, 1200))) * time.Millisecond)
		switch who {
		case "reconciler":
			s.reconciler.kill()
			s.startReconciler()
		case "receiver":
			s.receiver.kill()
			s.startReceiver()
		}
		t.Logf("kill -9 %d of %d: %s; 2xx so far %d", i+1, len(kills), who, l.count2xx())
	}
	time.Sleep(time.Second)
	tl := settle(t, s.ledger, l, scale(60*time.Second, 3*time.Minute))
	assertNothingLost(t, "kill -9 ×"+itoa(scale(3, 50))+" reconciler, ×"+itoa(scale(2, 10))+" receiver", tl)
}

// TestNATSStoppedUnderLoad: an external nats-server is killed under load. While it is down the
// receiver answers 503 with Retry-After, never a 2xx, and its /readyz is 503; after NATS is back,
// every acknowledged webhook is applied.
func TestNATSStoppedUnderLoad(t *testing.T) {
	s := newStack(t, stackOpts{externalNATS: true})
	l := startLoad(t, s.recvURL, 100)
	time.Sleep(2 * time.Second)
	s.nats.kill()
	down := time.Now()
	time.Sleep(500 * time.Millisecond) // answers already on their way when NATS died
	quiet := time.Now()
	waitFor(t, 10*time.Second, "the receiver's /readyz 503", func() bool { return status(s.recvURL+"/readyz") == 503 })
	time.Sleep(scale(3*time.Second, 30*time.Second))
	if n := l.okSince(quiet); n != 0 {
		t.Fatalf("%d webhooks got a 2xx while NATS was down", n)
	}
	l.mu.Lock()
	refused, bad := l.statuses[503], l.statuses[-503]
	l.mu.Unlock()
	if refused == 0 || bad != 0 {
		t.Fatalf("while NATS was down: %d answers 503 with Retry-After, %d without", refused, bad)
	}
	s.startNATS()
	t.Logf("NATS down %s; 503 answers %d", time.Since(down).Round(time.Millisecond), refused)
	waitFor(t, 30*time.Second, "2xx again", func() bool { return l.okSince(time.Now().Add(-time.Second)) > 0 })
	time.Sleep(scale(time.Second, 10*time.Second))
	tl := settle(t, s.ledger, l, 60*time.Second)
	assertNothingLost(t, "external NATS killed for "+scale("3 s", "30 s"), tl)
}

// TestLedgerWriteLocked: another process holds the ledger's write lock for longer than
// KNETRECON_MAX_DELIVER × KNETRECON_ACK_WAIT (5 minutes in make chaos). The reconciler holds its
// batch, says so on /readyz, and applies everything once the lock is gone: 0 dead letters, 0 lost.
func TestLedgerWriteLocked(t *testing.T) {
	s := newStack(t, stackOpts{reconcilerEnv: map[string]string{
		"KNETRECON_MAX_DELIVER": "2", "KNETRECON_LEDGER_BUSY_TIMEOUT": "200ms"}})
	l := startLoad(t, s.recvURL, 100)
	time.Sleep(time.Second)
	release := holdWriteLock(t, s.ledger)
	waitFor(t, 15*time.Second, "the reconciler's /readyz 503", func() bool { return status(s.adminURL+"/readyz") == 503 })
	time.Sleep(scale(8*time.Second, 5*time.Minute))
	if got := metric(t, s.adminURL+"/metrics", "knetrecon_reconciler_ledger_failing"); got != 1 {
		t.Fatalf("ledger_failing %v while locked", got)
	}
	release()
	waitFor(t, 30*time.Second, "the reconciler ready again", func() bool { return status(s.adminURL+"/readyz") == 200 })
	time.Sleep(time.Second)
	tl := settle(t, s.ledger, l, 60*time.Second)
	assertNothingLost(t, "ledger write-locked for "+scale("8 s", "5 min")+" (max-deliver 2, ack wait 2 s)", tl)
}

// TestLedgerDiskFull: the ledger's disk (a tmpfs of its own) fills up under load, and is freed
// later. Nothing is dead-lettered and nothing is lost. Needs root to mount the tmpfs.
func TestLedgerDiskFull(t *testing.T) {
	dir := t.TempDir()
	// Room for the ledger of the whole run (about 1.5 KB a webhook), then filled by hand.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+scale("32m", "512m"), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("the disk-full fault needs a small filesystem of its own (root, mount -t tmpfs): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	s := newStack(t, stackOpts{ledgerDir: dir, reconcilerEnv: map[string]string{"KNETRECON_MAX_DELIVER": "2"}})
	l := startLoad(t, s.recvURL, 100)
	time.Sleep(time.Second)
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	waitFor(t, 30*time.Second, "the reconciler's /readyz 503 (disk full)", func() bool { return status(s.adminURL+"/readyz") == 503 })
	time.Sleep(scale(8*time.Second, 5*time.Minute))
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the reconciler ready again", func() bool { return status(s.adminURL+"/readyz") == 200 })
	time.Sleep(time.Second)
	tl := settle(t, s.ledger, l, 60*time.Second)
	assertNothingLost(t, "ledger disk full for "+scale("8 s", "5 min"), tl)
}

// fill writes path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// The last partial block too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	_ = f.Sync()
}

// TestPanicInjected: the chaos build panics on the first write of about one event in five. The
// reconciler goes on: everything applied, nothing dead-lettered, the process never restarted.
func TestPanicInjected(t *testing.T) {
	s := newStack(t, stackOpts{reconcilerEnv: map[string]string{"KNETRECON_CHAOS_PANIC_EVERY": "5"}})
	l := startLoad(t, s.recvURL, 100)
	time.Sleep(scale(3*time.Second, 30*time.Second))
	tl := settle(t, s.ledger, l, 60*time.Second)
	if !s.reconciler.running() {
		t.Fatal("the reconciler died")
	}
	log, _ := os.ReadFile(s.reconciler.log)
	if n := strings.Count(string(log), "chaos: injected panic"); n == 0 {
		t.Fatal("no panic was injected")
	}
	assertNothingLost(t, "a panic in the first write of 1 event in 5", tl)
}

// TestStreamAtByteLimit: a 1 MiB stream receives several MiB of webhooks while the reconciler
// keeps up: every webhook gets a 2xx (applied history makes room), every one is applied.
func TestStreamAtByteLimit(t *testing.T) {
	s := newStack(t, stackOpts{receiverEnv: map[string]string{"KNETRECON_STREAM_MAX_BYTES": "1048576"}})
	l := startLoad(t, s.recvURL, 200)
	time.Sleep(scale(10*time.Second, 60*time.Second))
	tl := settle(t, s.ledger, l, 60*time.Second)
	l.mu.Lock()
	non2xx := tl.sent - tl.acked
	l.mu.Unlock()
	if non2xx != 0 {
		t.Fatalf("%d webhooks refused with a caught-up ledger: %v", non2xx, l.statuses)
	}
	info := s.streamInfo(t)
	if info.State.Bytes > 1<<20 || info.State.FirstSeq == 1 {
		t.Fatalf("stream holds %d bytes from seq %d after %d webhooks: the limit was not reached", info.State.Bytes, info.State.FirstSeq, tl.acked)
	}
	t.Logf("stream: %d bytes, seq %d to %d", info.State.Bytes, info.State.FirstSeq, info.State.LastSeq)
	assertNothingLost(t, "a 1 MiB stream, "+itoa(tl.acked)+" webhooks", tl)
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
