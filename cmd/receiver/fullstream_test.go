package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
)

// sizedWebhook is a signed-ready capture of its own payment, padded to about size bytes.
func sizedWebhook(t *testing.T, prefix string, n, size int) (id string, body []byte) {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(sample(t, "webhook_payment_captured.json"), &env); err != nil {
		t.Fatal(err)
	}
	id = fmt.Sprintf("evt_%s_%06d", prefix, n)
	env["id"] = id
	data := env["data"].(map[string]any)
	data["id"] = fmt.Sprintf("pay_%s_%06d", prefix, n)
	data["metadata"] = map[string]any{"padding": ""}
	base, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if pad := size - len(base); pad > 0 {
		data["metadata"] = map[string]any{"padding": strings.Repeat("k", pad)}
	}
	if body, err = json.Marshal(env); err != nil {
		t.Fatal(err)
	}
	return id, body
}

// answers records which webhooks got a 2xx, and how the others were answered.
type answers struct {
	mu       sync.Mutex
	ok       map[string]bool
	statuses map[int]int
}

func newAnswers() *answers { return &answers{ok: map[string]bool{}, statuses: map[int]int{}} }

// send posts body, signed, to addr and records the answer.
func (a *answers) send(t *testing.T, client *http.Client, addr, id string, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/checkout", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0
	}
	for k, v := range signed(oldKey, body) {
		req.Header.Set(k, v)
	}
	code := 0
	if resp, err := client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
		if code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			code = -503
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.statuses[code]++
	if code >= 200 && code < 300 {
		a.ok[id] = true
	}
	return code
}

func (a *answers) count() (ok int, statuses map[int]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[int]int, len(a.statuses))
	for k, v := range a.statuses {
		out[k] = v
	}
	return len(a.ok), out
}

// missing returns the webhooks answered 2xx that the stream does not hold (read message by
// message, by their Nats-Msg-Id), and the stream's first sequence.
func (a *answers) missing(t *testing.T, s jetstream.Stream) (lost []string, first uint64) {
	t.Helper()
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		held[m.Header.Get(events.HeaderMsgID)] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.ok {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	return lost, info.State.FirstSeq
}

// ackFloor is the durable consumer's ack floor.
func ackFloor(t *testing.T, js jetstream.JetStream, durable string) uint64 {
	t.Helper()
	c, err := js.Consumer(context.Background(), events.StreamName, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.AckFloor.Stream
}

// TestMixedSizesNeverDiscardUnapplied is the first run: a 1 MiB stream full of applied
// 1.5 KB history, then the ledger stops applying and 8 KB and 31 KB webhooks arrive from 8
// senders. Every webhook answered 2xx is still in the stream (none discarded unapplied), the
// applied history made room first, and the receiver refuses (503 backlog_full) once only
// unapplied messages are left. Once the ledger catches up, intake resumes.
func TestMixedSizesNeverDiscardUnapplied(t *testing.T) {
	const maxBytes = 1 << 20
	m := mustRunReceiver(t, map[string]string{"KNETRECON_STREAM_MAX_BYTES": strconv.Itoa(maxBytes), "KNETRECON_STREAM_BACKLOG_CHECK": "20ms"})
	_, js := connect(t, m)
	s := stream(t, m)
	client := &http.Client{Timeout: 10 * time.Second}

	history := newAnswers()
	for i := 0; i < 800; i++ { // about 1.3 MB of 1.5 KB webhooks, applied as they come
		id, body := sizedWebhook(t, "history", i, 1500)
		if code := history.send(t, client, m.Addr(), id, body); code != http.StatusOK {
			t.Fatalf("history webhook %d: %d", i, code)
		}
		if i%100 == 99 {
			ackAll(t, js, "reconciler")
		}
	}
	ackAll(t, js, "reconciler")
	floor := ackFloor(t, js, "reconciler")

	// The ledger stops; 8 and 31 KB webhooks from 8 senders until 20 refusals in a row.
	big := newAnswers()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next, refusedInRow := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				n := next
				next++
				stop := refusedInRow >= 20 || n >= 400
				mu.Unlock()
				if stop {
					return
				}
				size := 8 << 10
				if n%3 == 2 {
					size = 31 << 10
				}
				id, body := sizedWebhook(t, "big", n, size)
				code := big.send(t, client, m.Addr(), id, body)
				mu.Lock()
				if code == http.StatusServiceUnavailable {
					refusedInRow++
				} else {
					refusedInRow = 0
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ok, statuses := big.count()
	lost, first := big.missing(t, s)
	t.Logf("FIGURE mixed sizes on a 1 MiB stream, ledger held back after 800 applied 1.5 KB webhooks: "+
		"%d 8/31 KB webhooks sent, %d answered 2xx, %d of them missing from the stream; answers %v; stream first seq %d, ack floor %d",
		next, ok, len(lost), statuses, first, floor)
	if len(lost) != 0 {
		t.Fatalf("%d webhooks answered 2xx were discarded before the ledger applied them, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	if first > floor+1 {
		t.Fatalf("the stream starts at %d, past the ledger's ack floor %d", first, floor)
	}
	if ok == 0 || statuses[http.StatusServiceUnavailable] == 0 || statuses[-503] != 0 {
		t.Fatalf("want some stored, then 503 with Retry-After: %v", statuses)
	}
	// The applied history made room: what the stream holds now is mostly the big webhooks (8 or
	// 31 KB each, answered 2xx), not the 1.5 KB history.
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes < maxBytes/2 || info.State.FirstSeq <= floor-uint64(100) {
		t.Fatalf("only %d big webhooks stored (%d bytes in the stream, first seq %d): the applied history did not make room", ok, info.State.Bytes, info.State.FirstSeq)
	}

	ackAll(t, js, "reconciler")
	pollUntil(t, 5*time.Second, "intake after the ledger caught up", func() bool {
		id, body := sizedWebhook(t, "after", 0, 31<<10)
		return big.send(t, client, m.Addr(), id, body) == http.StatusOK
	})
}

// TestTwoReceiversOneStream is the second run: two receivers publish to one 1 MiB stream
// while the ledger applies nothing. Neither may let the stream discard the other's answered
// webhooks: every 2xx of either is in the stream.
func TestTwoReceiversOneStream(t *testing.T) {
	const maxBytes = 1 << 20
	a := mustRunReceiver(t, map[string]string{"KNETRECON_STREAM_MAX_BYTES": strconv.Itoa(maxBytes)})
	tok, err := events.ReadEmbeddedToken(a.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	b := mustRunReceiver(t, map[string]string{"KNETRECON_STREAM_MAX_BYTES": strconv.Itoa(maxBytes),
		"KNETRECON_NATS_URL": a.NATSURL(), "KNETRECON_NATS_TOKEN": tok,
		"KNETRECON_DURABLE": "false"}) // a's server does not fsync b's webhooks: only a's own 2xx wait for its group commit
	_, js := connect(t, a)
	if _, err := events.EnsureConsumer(context.Background(), js, events.DefaultConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	s := stream(t, a)
	client := &http.Client{Timeout: 10 * time.Second}
	got := newAnswers()
	var wg sync.WaitGroup
	for r, m := range []*Main{a, b} {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				refused := 0
				for i := 0; i < 250 && refused < 10; i++ {
					size := 1500
					if i%5 == 4 {
						size = 8 << 10
					}
					id, body := sizedWebhook(t, fmt.Sprintf("two_r%d_w%d", r, w), i, size)
					if got.send(t, client, m.Addr(), id, body) == http.StatusServiceUnavailable {
						refused++
					}
				}
			}()
		}
	}
	wg.Wait()
	ok, statuses := got.count()
	lost, first := got.missing(t, s)
	t.Logf("FIGURE two receivers on one 1 MiB stream, ledger held back: %d answered 2xx, %d of them missing from the stream; answers %v; stream first seq %d",
		ok, len(lost), statuses, first)
	if len(lost) != 0 {
		t.Fatalf("%d webhooks answered 2xx were discarded before the ledger applied them, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	if first != 1 || statuses[http.StatusServiceUnavailable] == 0 || statuses[-503] != 0 {
		t.Fatalf("want the stream from seq 1 and 503s with Retry-After: first %d, %v", first, statuses)
	}
}

// TestNATSStoreFullFailsFastAndRecovers: the embedded NATS store's file system fills up (a
// tmpfs of its own, filled by another file). The receiver answers 503 at once instead of after
// the publish timeout, /readyz says not ready, and once the space is freed intake resumes within
// seconds, in the same process. Needs root for the tmpfs; skipped otherwise.
func TestNATSStoreFullFailsFastAndRecovers(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("the full-store case needs a small file system of its own (root, mount -t tmpfs): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	m := mustRunReceiver(t, map[string]string{"KNETRECON_DATA_DIR": dir, "KNETRECON_STREAM_MAX_BYTES": strconv.Itoa(4 << 20),
		"KNETRECON_PUBLISH_TIMEOUT": "2s"})
	client := &http.Client{Timeout: 10 * time.Second}
	got := newAnswers()
	for i := range 10 {
		id, body := sizedWebhook(t, "before_full", i, 1500)
		if code := got.send(t, client, m.Addr(), id, body); code != http.StatusOK {
			t.Fatalf("before the disk filled: %d", code)
		}
	}

	filler := filepath.Join(dir, "filler")
	fillFS(t, filler)
	full := time.Now()
	// The first webhooks meet the full disk; soon every one is refused at once.
	n := 0
	pollUntil(t, 15*time.Second, "/readyz 503 with the store's disk full", func() bool {
		id, body := sizedWebhook(t, "full", n, 1500)
		n++
		got.send(t, client, m.Addr(), id, body)
		code, _ := get(t, "http://"+m.Addr()+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	notReady := time.Since(full)
	var slowest time.Duration
	for i := range 20 {
		id, body := sizedWebhook(t, "full_fast", i, 1500)
		start := time.Now()
		code := got.send(t, client, m.Addr(), id, body)
		slowest = max(slowest, time.Since(start))
		if code != http.StatusServiceUnavailable {
			t.Fatalf("webhook with the store's disk full: %d, want 503 with Retry-After", code)
		}
	}
	if slowest > 100*time.Millisecond {
		t.Fatalf("503 with the disk full took up to %s, want at once (< 100ms)", slowest)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	i := 0
	pollUntil(t, 10*time.Second, "a 2xx after the space came back", func() bool {
		id, body := sizedWebhook(t, "after_full", i, 1500)
		i++
		return got.send(t, client, m.Addr(), id, body) == http.StatusOK
	})
	back := time.Since(freed)
	if code, text := get(t, "http://"+m.Addr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the space came back: %d %s", code, text)
	}
	lost, _ := got.missing(t, stream(t, m))
	ok, statuses := got.count()
	t.Logf("FIGURE NATS store's disk full: not ready %s after it filled; 20 webhooks answered 503 in at most %s; "+
		"first 2xx %s after the space came back, same process; %d answered 2xx, %d missing from the stream; answers %v",
		notReady.Round(time.Millisecond), slowest.Round(time.Microsecond), back.Round(time.Millisecond), ok, len(lost), statuses)
	if len(lost) != 0 {
		t.Fatalf("answered 2xx but not in the stream: %v", lost)
	}
	if back > 5*time.Second {
		t.Fatalf("intake came back %s after the space did, want within seconds", back)
	}
}

// fillFS writes path until its file system is full.
func fillFS(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for _, n := range []int{64 << 10, 4096, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// pollUntil polls cond every 50 ms until it holds, or fails the test after d.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
