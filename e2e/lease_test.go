package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// send sends sig to the running process without waiting for it to end (SIGSTOP, SIGCONT).
func (p *proc) send(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		p.t.Fatalf("%s is not running", p.name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// TestPausedSweepHolder: two reconcilers with different KNETRECON_SWEEP_LEASE_TTL (2 s, and 1 h
// on the one that sweeps); the bucket's 2 s times both. The holder is paused with SIGSTOP past its
// lease: the other takes over and voids the abandoned payments; resumed, the paused one never
// believes it still sweeps (no moment with two leaders), every abandoned payment is voided once,
// and both ledgers end equal.
func TestPausedSweepHolder(t *testing.T) {
	dir := t.TempDir()
	natsPort, recvPort, simPort := freePort(t), freePort(t), freePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	recvURL := fmt.Sprintf("http://127.0.0.1:%d", recvPort)
	c := &cluster{t: t, dir: dir, simURL: fmt.Sprintf("http://127.0.0.1:%d", simPort)}
	receiver := newProc(t, dir, "receiver", map[string]string{
		"KNETRECON_RECEIVER_ADDR": fmt.Sprintf("127.0.0.1:%d", recvPort),
		"KNETRECON_ADMIN_ADDR":    fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"KNETRECON_NATS_LISTEN":   fmt.Sprintf("127.0.0.1:%d", natsPort),
		"KNETRECON_DATA_DIR":      filepath.Join(dir, "receiver"),
		"KNETRECON_WEBHOOK_KEYS":  webhookKey,
		"KNETRECON_START_TIMEOUT": "20s",
	})
	receiver.start()
	waitFor(t, 30*time.Second, "the receiver ready", func() bool { return status(recvURL+"/readyz") == 200 })
	c.sim = newProc(t, dir, "ckosim", map[string]string{
		"KNETRECON_CKOSIM_ADDR":        fmt.Sprintf("127.0.0.1:%d", simPort),
		"KNETRECON_CKOSIM_SECRET_KEY":  simSecret,
		"KNETRECON_CKOSIM_WEBHOOK_URL": recvURL + "/webhooks/checkout",
		"KNETRECON_CKOSIM_WEBHOOK_KEY": webhookKey,
		"KNETRECON_CKOSIM_TIME_SCALE":  "0.01",
	})
	c.sim.start()
	waitFor(t, 20*time.Second, "the simulator", func() bool { return status(c.simURL+"/_sim/now") == 200 })
	keys := filepath.Join(dir, "fact.keys")
	if err := os.WriteFile(keys, []byte(factKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, ttl := range []string{"2s", "1h"} {
		port := freePort(t)
		c.adminURLs = append(c.adminURLs, fmt.Sprintf("http://127.0.0.1:%d", port))
		c.ledgers = append(c.ledgers, filepath.Join(dir, fmt.Sprintf("ledger%d.db", i+1)))
		c.reconcilers = append(c.reconcilers, newProc(t, dir, fmt.Sprintf("reconciler%d", i+1), map[string]string{
			"KNETRECON_LEDGER":              c.ledgers[i],
			"KNETRECON_CONSUMER":            fmt.Sprintf("reconciler-%c", 'a'+i),
			"KNETRECON_ADMIN_ADDR":          fmt.Sprintf("127.0.0.1:%d", port),
			"KNETRECON_NATS_URL":            natsURL,
			"KNETRECON_DATA_DIR":            filepath.Join(dir, "receiver"), // the embedded NATS's token
			"KNETRECON_WEBHOOK_KEYS":        webhookKey,
			"KNETRECON_FACT_KEYS_FILE":      keys,
			"KNETRECON_CHECKOUT_URL":        c.simURL,
			"KNETRECON_CHECKOUT_SECRET_KEY": simSecret,
			"KNETRECON_SWEEP_SCHEDULE":      "@every 1s",
			"KNETRECON_PENDING_TIMEOUT":     "2s",
			"KNETRECON_VOID_GRACE":          "1s",
			"KNETRECON_VERIFY_AFTER":        "off",
			"KNETRECON_SWEEP_LEASE_TTL":     ttl,
			"KNETRECON_REPORT_SCHEDULE":     "off",
			"KNETRECON_START_TIMEOUT":       "30s",
		}, "run"))
	}
	// The first creates the bucket with its 2 s; then the second (1 h locally) takes the lease.
	c.startReconciler(0)
	waitFor(t, 20*time.Second, "reconciler 1 to sweep", func() bool { return c.leader() == 0 })
	c.startReconciler(1)
	c.reconcilers[0].signal(syscall.SIGTERM) // gives the lease up at once
	waitFor(t, 20*time.Second, "reconciler 2 to sweep", func() bool { return c.leader() == 1 })
	c.startReconciler(0)

	var abandoned []string
	for n := range 3 {
		id, err := c.abandon(n)
		if err != nil {
			t.Fatal(err)
		}
		abandoned = append(abandoned, id)
	}
	// Paused past the bucket's TTL (not its own 1 h): the other takes over and voids.
	c.reconcilers[1].send(syscall.SIGSTOP)
	paused := time.Now()
	waitFor(t, 20*time.Second, "reconciler 1 to take over", func() bool { return c.leader() == 0 })
	takeover := time.Since(paused)
	waitFor(t, 30*time.Second, "every abandoned payment voided", func() bool {
		for _, id := range abandoned {
			if n, err := c.voids(id); err != nil || n == 0 {
				return false
			}
		}
		return true
	})
	c.reconcilers[1].send(syscall.SIGCONT)
	// For 6 s (three of the bucket's TTLs) after the resume, never two leaders.
	twice := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		a, _ := gauge(c.adminURLs[0]+"/metrics", "knetrecon_reconciler_sweep_leader")
		b, _ := gauge(c.adminURLs[1]+"/metrics", "knetrecon_reconciler_sweep_leader")
		if a == 1 && b == 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Fatalf("two sweep leaders at %d samples after the paused holder resumed", twice)
	}
	for _, id := range abandoned {
		if n, err := c.voids(id); err != nil || n != 1 {
			t.Fatalf("%s voided %d times (%v)", id, n, err)
		}
	}
	// Both ledgers end equal, at the same position.
	var last uint64
	waitFor(t, 30*time.Second, "both ledgers at the stream's end", func() bool {
		d1, d2 := digestOf(t, c.ledgers[0]), digestOf(t, c.ledgers[1])
		last = d1.StreamSeq
		return d1.StreamSeq == d2.StreamSeq && d1.Same(d2)
	})
	t.Logf("FIGURE paused sweep holder: taken over %s after SIGSTOP (bucket TTL 2s, the paused one's own 1h); "+
		"0 samples with two leaders over 6s after SIGCONT; %d abandoned payments voided once each; ledgers equal at stream seq %d",
		takeover.Round(time.Millisecond), len(abandoned), last)
}
