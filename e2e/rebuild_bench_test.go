//go:build roadbench

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
)

// TestRebuildMillion measures `reconciler rebuild` of a ledger of KNETRECON_BENCH_PAYMENTS
// payments (1,000,000 by default; each a signed 1.5 KB capture webhook, as the receiver stores
// them) from the stream alone, `reconciler backup` of the result, and a rebuild from that backup
// plus 10,000 messages after it. `make bench-rebuild`.
func TestRebuildMillion(t *testing.T) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("KNETRECON_BENCH_PAYMENTS")); err == nil && v > 0 {
		n = v
	}
	dir := t.TempDir()
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	ns := newProc(t, dir, "nats", nil, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", filepath.Join(dir, "nats"))
	ns.start()
	nc, err := nats.Connect(url, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := events.DefaultStreamConfig()
	cfg.MaxBytes = -1
	waitFor(t, 20*time.Second, "the stream", func() bool { _, err := events.EnsureStream(ctx, js, cfg); return err == nil })
	l := &load{prefix: "rebuild", source: "knet"}
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			id, _, body := l.body(i)
			mac := hmac.New(sha256.New, []byte(webhookKey))
			mac.Write(body)
			w := &events.Webhook{Body: body, EventID: id, EventType: "payment_captured", Signature: hex.EncodeToString(mac.Sum(nil)), ReceivedAt: time.Now()}
			if _, err := js.PublishMsgAsync(w.Message()); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(5 * time.Minute):
			t.Fatal("publishes not acknowledged")
		}
	}
	t0 := time.Now()
	publish(0, n)
	t.Logf("published %d webhooks in %s", n, time.Since(t0).Round(time.Millisecond))

	reconciler := func(ledger string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "reconciler"), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KNETRECON_LEDGER=" + ledger, "KNETRECON_NATS_URL=" + url,
			"KNETRECON_WEBHOOK_KEYS=" + webhookKey, "KNETRECON_DATA_DIR=" + filepath.Join(dir, "data"), "KNETRECON_LOG_LEVEL=warn"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("reconciler %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ledger := filepath.Join(dir, "ledger.db")
	start := time.Now()
	out := reconciler(ledger, "rebuild")
	full := time.Since(start)
	t.Log(out)
	backup := filepath.Join(dir, "backup.db")
	start = time.Now()
	reconciler(ledger, "backup", backup)
	took := time.Since(start)
	st, _ := os.Stat(backup)
	publish(n, n+10_000)
	start = time.Now()
	out2 := reconciler(filepath.Join(dir, "restored.db"), "rebuild", "--from-backup", backup)
	fromBackup := time.Since(start)
	t.Log(out2)
	msg := fmt.Sprintf("rebuild of a ledger of %d payments from the stream: %s (%.0f messages/s, the command's wall time); "+
		"backup of it: %s (%d MB); rebuild from that backup plus 10,000 messages: %s",
		n, full.Round(100*time.Millisecond), float64(n)/full.Seconds(), took.Round(100*time.Millisecond), st.Size()>>20, fromBackup.Round(100*time.Millisecond))
	t.Log(msg)
	fmt.Println("FIGURE " + msg)
}
