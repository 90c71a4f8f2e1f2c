package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/events/eventstest"
)

// TestDeskOperatorsAndHosts: the desk's guard as `reconciler run` wires it from the environment:
// per-operator tokens from KNETRECON_DESK_TOKENS_FILE beside KNETRECON_DESK_TOKEN, the hosts of
// KNETRECON_DESK_HOSTS, and a tokens file that cannot be read stops the start.
func TestDeskOperatorsAndHosts(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	tokens := filepath.Join(t.TempDir(), "desk-tokens")
	if err := os.WriteFile(tokens, []byte("alice:alice-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_LEDGER": filepath.Join(t.TempDir(), "ledger.db"),
		"KNETRECON_ADMIN_ADDR": "0.0.0.0:0", "KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_REPORT_SCHEDULE": "off",
		"KNETRECON_WEBHOOK_KEYS": testWebhookKey, "KNETRECON_DESK_TOKEN": "the-single-token-0123",
		"KNETRECON_DESK_TOKENS_FILE": tokens, "KNETRECON_DESK_HOSTS": "desk.example.internal"}
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	_, port, _ := net.SplitHostPort(m.AdminAddr())
	do := func(host, auth string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+"/", nil)
		req.Host = host
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		host, auth string
		want       int
	}{
		{"127.0.0.1:" + port, "", http.StatusUnauthorized},
		{"127.0.0.1:" + port, "Bearer alice-0123456789abcdef", http.StatusOK},
		{"127.0.0.1:" + port, "Bearer the-single-token-0123", http.StatusOK},
		{"desk.example.internal:" + port, "Bearer alice-0123456789abcdef", http.StatusOK},
		{"rebind.evil.example:" + port, "Bearer alice-0123456789abcdef", http.StatusMisdirectedRequest},
	} {
		if code := do(tt.host, tt.auth); code != tt.want {
			t.Errorf("Host %s, %q: %d, want %d", tt.host, tt.auth, code, tt.want)
		}
	}
	if code, _ := get(t, "http://127.0.0.1:"+port+"/metrics"); code != 200 {
		t.Errorf("metrics behind the desk's guard: %d", code)
	}

	vars["KNETRECON_DESK_TOKENS_FILE"] = filepath.Join(t.TempDir(), "missing")
	vars["KNETRECON_LEDGER"] = filepath.Join(t.TempDir(), "ledger.db")
	cfg, _, err = ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	m2 := NewMain(cfg, zaptest.NewLogger(t))
	err = m2.Run(context.Background())
	_ = m2.Close()
	if err == nil || !strings.Contains(err.Error(), "KNETRECON_DESK_TOKENS_FILE") {
		t.Fatalf("a missing tokens file: %v", err)
	}
}
