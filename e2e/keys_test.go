package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKeyRotationOnSIGHUP: the reconciler and the receiver re-read their key file on SIGHUP; the
// new key is accepted at once, without a restart (same processes, embedded NATS up), and what it
// signs is verified again and applied by the reconciler.
func TestKeyRotationOnSIGHUP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "webhook_keys")
	if err := os.WriteFile(file, []byte(webhookKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Both the receiver and the reconciler read the key file (the reconciler verifies each message again).
	env := map[string]string{"KNETRECON_WEBHOOK_KEYS": "", "KNETRECON_WEBHOOK_KEYS_FILE": file}
	s := newStack(t, stackOpts{receiverEnv: env, reconcilerEnv: env})
	post := func(key string, n int) int {
		l := &load{prefix: "rotation"}
		_, _, b := l.body(n)
		req, _ := http.NewRequest(http.MethodPost, s.recvURL+"/webhooks/checkout", bytes.NewReader(b))
		req.Header.Set("Cko-Signature", sign(key, b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const rotated = "whsec-rotated-key"
	if got := post(rotated, 1); got != 401 {
		t.Fatalf("the new key before the rotation: %d", got)
	}
	pid := s.receiver.cmd.Process.Pid
	if err := os.WriteFile(file, []byte(webhookKey+","+rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Webhooks signed with the old key keep coming during the reload: none may be refused.
	stop := make(chan struct{})
	var sent, ok int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sent++
			if during(s.recvURL, webhookKey, 100+i) == 200 {
				ok++
			}
		}
	}()
	// The reconciler first (so nothing signed with the new key is taken for forged), then the receiver.
	for _, p := range []*proc{s.reconciler, s.receiver} {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, p.name+" reloaded its keys", func() bool {
			log, _ := os.ReadFile(p.log)
			return strings.Contains(string(log), "webhook keys reloaded")
		})
	}
	waitFor(t, 10*time.Second, "the rotated key accepted", func() bool { return post(rotated, 2) == 200 })
	close(stop)
	<-done
	t.Logf("during the reload: %d webhooks sent with the old key, %d answered 200", sent, ok)
	if sent == 0 || ok != sent {
		t.Fatalf("during the reload: %d sent, %d answered 200", sent, ok)
	}
	if got := post(webhookKey, 3); got != 200 {
		t.Fatalf("the old key during the rotation: %d", got)
	}
	if !s.receiver.running() || s.receiver.cmd.Process.Pid != pid || status(s.recvURL+"/readyz") != 200 {
		t.Fatal("the receiver restarted or is not ready after SIGHUP")
	}
	waitFor(t, 30*time.Second, "both webhooks applied", func() bool {
		l := &load{prefix: "rotation", acked: map[string]int64{"evt_rotation_0000002": 0, "evt_rotation_0000003": 0}}
		tl, err := readLedger(s.ledger, l)
		return err == nil && tl.lost == 0
	})
}

// during posts one webhook signed with key and returns the status (0 when the connection failed).
func during(url, key string, n int) int {
	l := &load{prefix: "reload"}
	_, _, b := l.body(n)
	req, _ := http.NewRequest(http.MethodPost, url+"/webhooks/checkout", bytes.NewReader(b))
	req.Header.Set("Cko-Signature", sign(key, b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
