package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

const (
	oldKey = "sk_sbox_old_signature_key"
	newKey = "whsec_new_signature_key"
)

// mustRunReceiver boots a receiver from env (plus test defaults) and stops it at the end.
func mustRunReceiver(t *testing.T, env map[string]string) *Main {
	t.Helper()
	base := map[string]string{
		"KNETRECON_RECEIVER_ADDR": "127.0.0.1:0",
		"KNETRECON_NATS_LISTEN":   "127.0.0.1:0",
		"KNETRECON_DATA_DIR":      t.TempDir(),
		"KNETRECON_WEBHOOK_KEYS":  oldKey + "," + newKey,
		"KNETRECON_START_TIMEOUT": "5s",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := ParseConfig(nil, func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "checkout", "testdata", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, m *Main, body []byte, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+m.Addr()+m.Config.WebhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	return resp, string(text)
}

func signed(key string, body []byte) map[string]string {
	return map[string]string{checkout.SignatureHeader: checkout.Sign([]byte(key), body)}
}

// connect connects to the receiver's embedded NATS with the token from its data directory.
func connect(t *testing.T, m *Main) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	tok, err := events.ReadEmbeddedToken(m.Config.DataDir)
	if err != nil || tok == "" {
		t.Fatalf("embedded NATS token: %q %v", tok, err)
	}
	return eventstest.MustConnectToken(t, m.ns, tok)
}

// stream opens the receiver's stream through a connection of the test's own.
func stream(t *testing.T, m *Main) jetstream.Stream {
	t.Helper()
	_, js := connect(t, m)
	s, err := js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func msgCount(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSignedSampleStoredOnce(t *testing.T) {
	m := mustRunReceiver(t, nil)
	s := stream(t, m)
	body := sample(t, "webhook_payment_captured.json")

	for i := range 2 {
		resp, text := post(t, m, body, signed(oldKey, body))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post %d: %d %s", i, resp.StatusCode, text)
		}
		want := []string{`"stored"`, `"duplicate"`}[i]
		if !strings.Contains(text, want) {
			t.Fatalf("post %d answered %s, want %s", i, text, want)
		}
	}
	if n := msgCount(t, s); n != 1 {
		t.Fatalf("stream has %d messages, want 1", n)
	}
	// Durable by default: each 2xx waited for an fsync round (the duplicate's too).
	if m.gsync == nil || m.gsync.Rounds() < 2 {
		t.Fatalf("durable by default: group sync %v", m.gsync)
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), "checkout.events.payment_captured")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg.Data, body) {
		t.Fatal("stored body differs from the body received")
	}
	if got := msg.Header.Get("Nats-Msg-Id"); got != "evt_6aznipgxbuaure3qen5qbzyswy" {
		t.Fatalf("Nats-Msg-Id = %q", got)
	}
	if got := msg.Header.Get(events.HeaderKey); got != "key1" {
		t.Fatalf("key header = %q, want key1", got)
	}
	if _, err := time.Parse(time.RFC3339Nano, msg.Header.Get(events.HeaderReceivedAt)); err != nil {
		t.Fatalf("received-at header: %v", err)
	}
}

func TestEverySampleAccepted(t *testing.T) {
	m := mustRunReceiver(t, nil)
	s := stream(t, m)
	paths, err := filepath.Glob(filepath.Join("..", "..", "internal", "checkout", "testdata", "samples", "webhook_*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	ids := map[string]bool{}
	for _, p := range paths {
		body := sample(t, filepath.Base(p))
		ev, err := checkout.DecodeEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		ids[ev.ID] = true
		if resp, text := post(t, m, body, signed(newKey, body)); resp.StatusCode != http.StatusOK || strings.Contains(text, "quarantined") {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, text)
		}
	}
	// The two captured samples share an event id: one message for them.
	if n := msgCount(t, s); n != uint64(len(ids)) {
		t.Fatalf("stream has %d messages, want %d", n, len(ids))
	}
}

func TestUnauthenticatedRefused(t *testing.T) {
	m := mustRunReceiver(t, nil)
	s := stream(t, m)
	body := sample(t, "webhook_payment_refunded.json")
	tampered := bytes.Replace(body, []byte(`"amount": 200`), []byte(`"amount": 900`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("tampering changed nothing")
	}
	tests := []struct {
		name   string
		body   []byte
		header map[string]string
		reason string
	}{
		{"tampered body", tampered, signed(oldKey, body), "signature_mismatch"},
		{"wrong key", body, signed("not-our-key", body), "signature_mismatch"},
		{"missing header", body, nil, "signature_missing"},
		{"malformed header", body, map[string]string{checkout.SignatureHeader: "sha256=abc"}, "signature_malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, text := post(t, m, tt.body, tt.header); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d %s, want 401", resp.StatusCode, text)
			}
		})
	}
	if n := msgCount(t, s); n != 0 {
		t.Fatalf("stream has %d messages after refusals, want 0", n)
	}
	_, metrics := get(t, "http://"+m.Addr()+"/metrics")
	for _, want := range []string{
		`knetrecon_receiver_signature_failures_total{reason="signature_mismatch"} 2`,
		`knetrecon_receiver_signature_failures_total{reason="signature_missing"} 1`,
		`knetrecon_receiver_requests_total{outcome="unauthorized"} 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAuthorizationHeader(t *testing.T) {
	m := mustRunReceiver(t, map[string]string{"KNETRECON_WEBHOOK_AUTHORIZATION": "Bearer shared-secret"})
	s := stream(t, m)
	body := sample(t, "webhook_payment_pending.json")
	h := signed(oldKey, body)
	if resp, _ := post(t, m, body, h); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("missing Authorization: %d, want 401", resp.StatusCode)
	}
	h["Authorization"] = "Bearer wrong"
	if resp, _ := post(t, m, body, h); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong Authorization: %d, want 401", resp.StatusCode)
	}
	if n := msgCount(t, s); n != 0 {
		t.Fatalf("stream has %d messages, want 0", n)
	}
	h["Authorization"] = "Bearer shared-secret"
	if resp, text := post(t, m, body, h); resp.StatusCode != http.StatusOK {
		t.Fatalf("right Authorization: %d %s", resp.StatusCode, text)
	}
}

func TestAuthenticButUndecodableQuarantined(t *testing.T) {
	m := mustRunReceiver(t, nil)
	s := stream(t, m)
	for _, body := range [][]byte{[]byte(`{"id": "evt_1", "type": `), []byte(`{"type":"payment_captured","data":{"id":"pay_1"}}`)} {
		resp, text := post(t, m, body, signed(newKey, body))
		if resp.StatusCode != http.StatusOK || !strings.Contains(text, "quarantined") {
			t.Fatalf("%s: %d %s, want 200 quarantined", body, resp.StatusCode, text)
		}
		// The same body again is the same quarantined message.
		post(t, m, body, signed(newKey, body))
	}
	if n := msgCount(t, s); n != 2 {
		t.Fatalf("stream has %d messages, want 2", n)
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), events.QuarantineSubject)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Header.Get(events.HeaderQuarantineReason), "missing id") || msg.Header.Get(events.HeaderKey) != "key2" {
		t.Fatalf("quarantine headers = %v", msg.Header)
	}
}

func TestLimitsAndMethods(t *testing.T) {
	m := mustRunReceiver(t, map[string]string{"KNETRECON_MAX_BODY_BYTES": "2048"})
	big := append([]byte(`{"id":"evt_big","type":"payment_captured","data":{"id":"pay_1","pad":"`), bytes.Repeat([]byte("x"), 4096)...)
	big = append(big, `"}}`...)
	if resp, _ := post(t, m, big, signed(oldKey, big)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d, want 413", resp.StatusCode)
	}
	// Without a Content-Length the limit still holds while reading.
	req, _ := http.NewRequest(http.MethodPost, "http://"+m.Addr()+m.Config.WebhookPath, io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversized: %d, want 413", resp.StatusCode)
	}
	if code, _ := get(t, "http://"+m.Addr()+m.Config.WebhookPath); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET webhook: %d, want 405", code)
	}
	if code, _ := get(t, "http://"+m.Addr()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	if code, _ := get(t, "http://"+m.Addr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d", code)
	}
}

func TestMetricsOnSeparateAddress(t *testing.T) {
	m := mustRunReceiver(t, map[string]string{"KNETRECON_METRICS_ADDR": "127.0.0.1:0"})
	if code, _ := get(t, "http://"+m.Addr()+"/metrics"); code == http.StatusOK {
		t.Fatal("/metrics still served on the webhook address")
	}
	code, text := get(t, "http://"+m.MetricsAddr()+"/metrics")
	if code != http.StatusOK || !strings.Contains(text, "knetrecon_receiver_publish_seconds") {
		t.Fatalf("admin /metrics: %d", code)
	}
}

func TestNATSOutage503ThenRecovery(t *testing.T) {
	// An external NATS on a fixed port and store, so that it can come back as it was.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	ns := eventstest.MustRunNATSAt(t, listen, dir)
	m := mustRunReceiver(t, map[string]string{"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_PUBLISH_TIMEOUT": "500ms",
		"KNETRECON_INTAKE_BROKEN_AFTER": "300ms", "KNETRECON_DURABLE": "false"})

	body := sample(t, "webhook_payment_expired.json")
	if resp, text := post(t, m, body, signed(oldKey, body)); resp.StatusCode != http.StatusOK {
		t.Fatalf("before outage: %d %s", resp.StatusCode, text)
	}
	ns.Shutdown()
	ns.WaitForShutdown()

	other := sample(t, "webhook_payment_pending.json")
	resp, text := post(t, m, other, signed(oldKey, other))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("during outage: %d %s (Retry-After %q), want 503 with Retry-After", resp.StatusCode, text, resp.Header.Get("Retry-After"))
	}
	if code, _ := get(t, "http://"+m.Addr()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during outage: %d, want 503", code)
	}
	// Intake broken past KNETRECON_INTAKE_BROKEN_AFTER: /healthz fails, so a liveness probe
	// would restart the receiver.
	if code, _ := get(t, "http://"+m.Addr()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz at the start of the outage: %d, want 200", code)
	}
	if m.handler.FailingFor(time.Now().Add(time.Second)) < 300*time.Millisecond {
		t.Fatal("the failing publish was not recorded")
	}
	time.Sleep(400 * time.Millisecond) // past the bound, on the real clock the probe reads
	if code, text := get(t, "http://"+m.Addr()+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(text, "every publish has failed") {
		t.Fatalf("/healthz after the bound: %d %s, want 503", code, text)
	}

	back := eventstest.MustRunNATSAt(t, listen, dir)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get(t, "http://"+m.Addr()+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("receiver not ready again 10s after NATS returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, text := post(t, m, other, signed(oldKey, other)); resp.StatusCode != http.StatusOK || !strings.Contains(text, "stored") {
		t.Fatalf("after recovery: %d %s", resp.StatusCode, text)
	}
	if code, _ := get(t, "http://"+m.Addr()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after recovery: %d, want 200", code)
	}
	_, js := eventstest.MustConnect(t, back)
	s, err := js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if n := msgCount(t, s); n != 2 {
		t.Fatalf("stream has %d messages after recovery, want 2 (one before, one after the outage)", n)
	}
}

func TestStartWithoutKeysFails(t *testing.T) {
	_, err := ParseConfig(nil, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "KNETRECON_WEBHOOK_KEYS") {
		t.Fatalf("ParseConfig without keys = %v, want an error naming KNETRECON_WEBHOOK_KEYS", err)
	}
	_, err = ParseConfig(nil, func(k string) string {
		return map[string]string{"KNETRECON_WEBHOOK_KEYS": "a", "KNETRECON_WEBHOOK_KEYS_FILE": "/nonexistent"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("keys and keys file both set: %v", err)
	}
}

func TestKeysFromFileNeverLogged(t *testing.T) {
	f := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(f, []byte("file-key-1\nfile-key-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]string{"-webhook-keys-file", f, "-nats-listen", "127.0.0.1:0", "-data-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := checkout.ParseKeys(cfg.WebhookKeys); len(got) != 2 {
		t.Fatalf("keys from file = %d, want 2", len(got))
	}
	_, err = ParseConfig(nil, func(k string) string {
		return map[string]string{"KNETRECON_WEBHOOK_KEYS": "sk_secret_value", "KNETRECON_MAX_BODY_BYTES": "-1"}[k]
	})
	if err == nil || strings.Contains(err.Error(), "sk_secret_value") {
		t.Fatalf("error %v must name the problem and never the key", err)
	}
}

// webhookN is a signed captured webhook with a distinct event id and payment, about 1.5 KB.
func webhookN(t *testing.T, n int) []byte {
	t.Helper()
	b := sample(t, "webhook_payment_captured.json")
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	env["id"] = fmt.Sprintf("evt_backlog_%06d", n)
	env["data"].(map[string]any)["id"] = fmt.Sprintf("pay_backlog_%06d", n)
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ackAll reads every message the durable consumer durable has, and acks it.
func ackAll(t *testing.T, js jetstream.JetStream, durable string) {
	t.Helper()
	ctx := context.Background()
	cfg := events.DefaultConsumerConfig()
	cfg.Durable = durable
	c, err := events.EnsureConsumer(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for {
		batch, err := c.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			if err := msg.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n == 0 {
			return
		}
	}
}

// TestStreamAtLimitCaughtUpStillStores: the stream is at its byte limit, the ledger's consumer has
// applied everything: new webhooks are stored (the oldest, applied history makes room), never 503.
func TestStreamAtLimitCaughtUpStillStores(t *testing.T) {
	const maxBytes = 64 << 10
	m := mustRunReceiver(t, map[string]string{"KNETRECON_STREAM_MAX_BYTES": strconv.Itoa(maxBytes), "KNETRECON_STREAM_BACKLOG_CHECK": "10ms"})
	_, js := connect(t, m)
	s := stream(t, m)
	sent := 0
	for round := 0; round < 4; round++ { // 4 × 40 × 1.5 KB: over twice the limit
		for i := 0; i < 40; i++ {
			body := webhookN(t, sent)
			sent++
			if resp, text := post(t, m, body, signed(oldKey, body)); resp.StatusCode != http.StatusOK {
				t.Fatalf("webhook %d: %d %s", sent, resp.StatusCode, text)
			}
		}
		ackAll(t, js, "reconciler")
		if _, err := m.guard.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != uint64(sent) || info.State.FirstSeq == 1 || info.State.Bytes > maxBytes {
		t.Fatalf("sent %d; stream first %d last %d, %d bytes", sent, info.State.FirstSeq, info.State.LastSeq, info.State.Bytes)
	}
}

// TestBacklogNearLimit503: the ledger applies nothing; before its unapplied messages would fill
// the stream, webhooks get 503 with Retry-After, and not one unapplied message is discarded.
// Once the ledger catches up, webhooks are stored again.
func TestBacklogNearLimit503(t *testing.T) {
	const maxBytes = 64 << 10
	m := mustRunReceiver(t, map[string]string{"KNETRECON_STREAM_MAX_BYTES": strconv.Itoa(maxBytes), "KNETRECON_STREAM_BACKLOG_CHECK": "10ms"})
	_, js := connect(t, m)
	if _, err := events.EnsureConsumer(context.Background(), js, events.DefaultConsumerConfig()); err != nil {
		t.Fatal(err)
	}
	s := stream(t, m)
	var stored, refused int
	for i := 0; i < 100 && refused == 0; i++ {
		body := webhookN(t, i)
		resp, text := post(t, m, body, signed(oldKey, body))
		switch resp.StatusCode {
		case http.StatusOK:
			stored++
		case http.StatusServiceUnavailable:
			refused++
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(text, "backlog_full") {
				t.Fatalf("503 without Retry-After or reason: %q", text)
			}
		default:
			t.Fatalf("webhook %d: %d %s", i, resp.StatusCode, text)
		}
	}
	if refused == 0 {
		t.Fatalf("100 webhooks over a %d-byte stream and no 503", maxBytes)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.FirstSeq != 1 || info.State.Msgs != uint64(stored) {
		t.Fatalf("unapplied messages were discarded: %d stored, stream holds %d from seq %d", stored, info.State.Msgs, info.State.FirstSeq)
	}
	ackAll(t, js, "reconciler")
	if _, err := m.guard.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := webhookN(t, 1000)
	if resp, text := post(t, m, body, signed(oldKey, body)); resp.StatusCode != http.StatusOK {
		t.Fatalf("after catching up: %d %s", resp.StatusCode, text)
	}
}

// TestNotDurableOptOut: KNETRECON_DURABLE=false answers after the PubAck alone, and
// KNETRECON_NATS_SYNC_ALWAYS leaves the fsync to nats-server: neither runs the group sync.
func TestNotDurableOptOut(t *testing.T) {
	for _, env := range []map[string]string{{"KNETRECON_DURABLE": "false"}, {"KNETRECON_NATS_SYNC_ALWAYS": "true"}} {
		m := mustRunReceiver(t, env)
		body := sample(t, "webhook_payment_captured.json")
		if resp, text := post(t, m, body, signed(oldKey, body)); resp.StatusCode != http.StatusOK {
			t.Fatalf("%v: %d %s", env, resp.StatusCode, text)
		}
		if m.gsync != nil {
			t.Fatalf("%v: group sync running", env)
		}
	}
}

// TestOversizedFieldsQuarantinedIntakeGoesOn: signed bodies whose type or id would not fit a NATS
// subject or header (a 4 KB type, a 70 KB id, CR/LF in a header value) are quarantined (stored,
// 200, visible), never a 503, and the next webhook is stored as usual: one hostile webhook cannot
// stop intake.
func TestOversizedFieldsQuarantinedIntakeGoesOn(t *testing.T) {
	m := mustRunReceiver(t, nil)
	s := stream(t, m)
	hostile := [][]byte{
		[]byte(`{"id":"evt_1","type":"` + strings.Repeat("payment_captured_", 250) + `","data":{"id":"pay_1"}}`),
		[]byte(`{"id":"evt_` + strings.Repeat("x", 70<<10) + `","type":"payment_captured","data":{"id":"pay_1"}}`),
		[]byte(`{"id":"evt_2\r\nNats-Msg-Id: evt_3","type":"payment_captured","data":{"id":"pay_1"}}`),
		[]byte(`{"id":"evt_4","type":"payment_captured\u0000","data":{"id":"pay_1"}}`),
	}
	for i, body := range hostile {
		resp, text := post(t, m, body, signed(oldKey, body))
		if resp.StatusCode != http.StatusOK || !strings.Contains(text, "quarantined") {
			t.Fatalf("hostile %d: %d %s, want 200 quarantined", i, resp.StatusCode, text)
		}
	}
	good := sample(t, "webhook_payment_captured.json")
	if resp, text := post(t, m, good, signed(oldKey, good)); resp.StatusCode != http.StatusOK || !strings.Contains(text, "stored") {
		t.Fatalf("the next webhook: %d %s", resp.StatusCode, text)
	}
	if n := msgCount(t, s); n != uint64(len(hostile))+1 {
		t.Fatalf("stream has %d messages, want %d", n, len(hostile)+1)
	}
	if code, _ := get(t, "http://"+m.Addr()+"/readyz"); code != 200 {
		t.Fatalf("readyz %d after hostile input", code)
	}
}

// TestEmbeddedNATSRequiresToken: the embedded server refuses a client without the token the
// receiver generated into its data directory (readable by its owner only), and accepts one with it.
func TestEmbeddedNATSRequiresToken(t *testing.T) {
	m := mustRunReceiver(t, nil)
	if _, err := nats.Connect(m.NATSURL(), nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
		t.Fatal("a client without the token connected to the embedded NATS")
	}
	info, err := os.Stat(filepath.Join(m.Config.DataDir, events.EmbeddedTokenFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", info, err)
	}
	nc, _ := connect(t, m)
	if !nc.IsConnected() {
		t.Fatal("the token did not connect")
	}
}

// TestBodyLimitMustFitNATS: a body limit NATS cannot carry (an external server's max_payload)
// is a start-up error naming both settings, not a 503 loop for every large webhook.
func TestBodyLimitMustFitNATS(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true, MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	cfg, err := ParseConfig(nil, func(k string) string {
		return map[string]string{"KNETRECON_RECEIVER_ADDR": "127.0.0.1:0", "KNETRECON_WEBHOOK_KEYS": oldKey,
			"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_START_TIMEOUT": "5s", "KNETRECON_DURABLE": "false"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	err = m.Run(context.Background())
	_ = m.Close()
	if err == nil || !strings.Contains(err.Error(), "KNETRECON_MAX_BODY_BYTES") || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("start with a 1 MiB body limit over a 64 KiB max_payload: %v", err)
	}
}

// TestKeysReloadWithoutRestart: the receiver re-reads KNETRECON_WEBHOOK_KEYS_FILE when it changes
// (and on SIGHUP): a key added is accepted, a key removed is refused, an empty file is refused and
// the keys in use are kept. The per-key counter shows which key signs.
func TestKeysReloadWithoutRestart(t *testing.T) {
	old := KeyCheckEvery
	KeyCheckEvery = 20 * time.Millisecond
	t.Cleanup(func() { KeyCheckEvery = old })
	file := filepath.Join(t.TempDir(), "keys")
	write := func(s string) {
		t.Helper()
		// Rename over it, as a secret manager does, so the change is seen whole.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(oldKey + "\n")
	m := mustRunReceiver(t, map[string]string{"KNETRECON_WEBHOOK_KEYS": "", "KNETRECON_WEBHOOK_KEYS_FILE": file})
	status := func(key string, n int) int {
		b := []byte(strings.Replace(string(sample(t, "webhook_payment_captured.json")), "evt_6aznipgxbuaure3qen5qbzyswy", fmt.Sprintf("evt_reload%d", n), 1))
		resp, _ := post(t, m, b, signed(key, b))
		return resp.StatusCode
	}
	if got := status(oldKey, 1); got != 200 {
		t.Fatalf("old key at start: %d", got)
	}
	if got := status(newKey, 2); got != 401 {
		t.Fatalf("new key before the rotation: %d", got)
	}
	write(oldKey + "," + newKey)
	waitUntil(t, "the new key accepted", func() bool { return status(newKey, 3) == 200 })
	write(newKey)
	waitUntil(t, "the old key refused", func() bool { return status(oldKey, 4) == 401 })
	write("")
	if err := m.ReloadKeys("SIGHUP"); err == nil {
		t.Fatal("an empty key file was accepted")
	}
	if got := status(newKey, 5); got != 200 {
		t.Fatalf("after a refused reload the keys in use must stay: %d", got)
	}
	metrics := getMetrics(t, m)
	fp := checkout.Key{Secret: []byte(newKey)}.Fingerprint()
	if !strings.Contains(metrics, `knetrecon_receiver_verified_total{key="`+fp+`"}`) ||
		// The refusal is counted once per try: the SIGHUP above, and the file watcher's own when it saw the change first.
		!regexp.MustCompile(`knetrecon_receiver_key_reloads_total\{result="error"\} [12]\n`).MatchString(metrics) || strings.Contains(metrics, newKey) ||
		!strings.Contains(metrics, `knetrecon_build_info{binary="receiver"`) {
		t.Fatalf("metrics:\n%s", metrics)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getMetrics(t *testing.T, m *Main) string {
	t.Helper()
	_, body := get(t, "http://"+m.Addr()+"/metrics")
	return body
}
