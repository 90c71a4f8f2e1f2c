package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
)

func TestParseConfig(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("sk_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{"defaults", nil, nil, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:8090" || c.Expiry != 7*time.Minute || c.TimeScale != 1 || c.Auth != "bearer" || c.DeliveryTimeout != 10*time.Second || c.Seed != 1 {
				t.Errorf("%+v", c)
			}
		}, ""},
		{"env", nil, map[string]string{
			"KNETRECON_CKOSIM_ADDR": ":0", "KNETRECON_CKOSIM_EXPIRY": "2m", "KNETRECON_CKOSIM_TIME_SCALE": "0.01",
			"KNETRECON_CKOSIM_DROP_RATE": "0.25", "KNETRECON_CKOSIM_SECRET_KEY_FILE": keyFile, "KNETRECON_CKOSIM_VOID_FORBIDDEN": "true",
			"KNETRECON_CKOSIM_WEBHOOK_URL": "http://127.0.0.1:8080/webhooks/checkout", "KNETRECON_CKOSIM_WEBHOOK_KEY": "whsec",
			"KNETRECON_CKOSIM_RETRY_AFTER": "3s", "KNETRECON_CKOSIM_DEMO": "12",
		}, func(t *testing.T, c Config) {
			if c.Addr != ":0" || c.Expiry != 2*time.Minute || c.TimeScale != 0.01 || c.Faults.DropRate != 0.25 || c.SecretKey != "sk_from_file" ||
				!c.Faults.VoidForbidden || c.WebhookKey != "whsec" || c.Faults.RetryAfter != ckosim.Duration(3*time.Second) || c.Demo != 12 {
				t.Errorf("%+v", c)
			}
		}, ""},
		{"flag beats env", []string{"--expiry", "30s", "--auth", "either"}, map[string]string{"KNETRECON_CKOSIM_EXPIRY": "2m"}, func(t *testing.T, c Config) {
			if c.Expiry != 30*time.Second || c.Auth != "either" {
				t.Errorf("%+v", c)
			}
		}, ""},
		{"bad rate", nil, map[string]string{"KNETRECON_CKOSIM_API_5XX_RATE": "2"}, nil, "KNETRECON_CKOSIM_API_5XX_RATE"},
		{"rate not a number", nil, map[string]string{"KNETRECON_CKOSIM_DUPLICATE_RATE": "lots"}, nil, "KNETRECON_CKOSIM_DUPLICATE_RATE"},
		{"bad auth", []string{"--auth", "basic"}, nil, nil, "KNETRECON_CKOSIM_AUTH"},
		{"webhook without key", nil, map[string]string{"KNETRECON_CKOSIM_WEBHOOK_URL": "http://x/h"}, nil, "KNETRECON_CKOSIM_WEBHOOK_KEY"},
		{"bad expiry", nil, map[string]string{"KNETRECON_CKOSIM_EXPIRY": "soon"}, nil, "KNETRECON_CKOSIM_EXPIRY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func mustConfig(t *testing.T, env map[string]string) Config {
	t.Helper()
	base := map[string]string{"KNETRECON_CKOSIM_ADDR": "127.0.0.1:0", "KNETRECON_CKOSIM_DEMO_INTERVAL": "0s"}
	for k, v := range env {
		base[k] = v
	}
	c, err := ParseConfig(nil, func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRun(t *testing.T, cfg Config) *Main {
	t.Helper()
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

func TestMainServesAPIAndKNETPage(t *testing.T) {
	m := mustRun(t, mustConfig(t, map[string]string{"KNETRECON_CKOSIM_SECRET_KEY": "sk_sbox_main"}))
	resp, err := http.Post(m.URL()+"/_sim/payments", "application/json",
		strings.NewReader(`{"amount":1000,"currency":"KWD","source":{"type":"knet","language":"en"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var created checkout.Payment
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(created.Links["redirect"].Href, m.URL()+"/knet/") {
		t.Fatalf("%d %+v", resp.StatusCode, created)
	}
	page, err := http.Get(created.Links["redirect"].Href)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(html), `name="pin"`) {
		t.Fatalf("KNET page: %s", html)
	}
	c, err := checkout.NewClient(checkout.ClientConfig{BaseURL: m.URL(), SecretKey: "sk_sbox_main"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.GetPayment(context.Background(), created.ID)
	if err != nil || p.Status != checkout.StatusPending {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := c.VoidPayment(context.Background(), created.ID, checkout.VoidRequest{}); err != nil {
		t.Fatal(err)
	}
	bad, _ := checkout.NewClient(checkout.ClientConfig{BaseURL: m.URL(), SecretKey: "sk_wrong"})
	if _, err := bad.GetPayment(context.Background(), created.ID); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestMainDemo(t *testing.T) {
	ring, _ := checkout.NewKeyRing(checkout.Key{Secret: []byte("whsec_demo")})
	var mu sync.Mutex
	var bad int
	types := map[string]int{}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		ev, err := checkout.DecodeEvent(body)
		if _, verr := ring.Verify(body, r.Header.Get(checkout.SignatureHeader)); verr != nil || err != nil {
			bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		types[ev.Type]++
	}))
	defer rc.Close()
	m := mustRun(t, mustConfig(t, map[string]string{
		"KNETRECON_CKOSIM_DEMO": "60", "KNETRECON_CKOSIM_WEBHOOK_URL": rc.URL, "KNETRECON_CKOSIM_WEBHOOK_KEY": "whsec_demo",
	}))
	select {
	case <-m.DemoDone():
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not finish")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Sim.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, id := range m.Sim.PaymentIDs() {
		p, _ := m.Sim.Payment(id)
		statuses[p.Status]++
	}
	for _, want := range []string{"Captured", "Partially Refunded", "Refunded", "Canceled", "Declined", "Expired", "Pending"} {
		if statuses[want] == 0 {
			t.Errorf("no %s payment in the demo: %v", want, statuses)
		}
	}
	if statuses["Captured"] < statuses["Canceled"] {
		t.Errorf("mix %v: most should be captured", statuses)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 || types["payment_pending"] != 60 || types["payment_captured"] == 0 || types["payment_refunded"] == 0 || types["payment_expired"] == 0 {
		t.Fatalf("webhooks %v, %d refused", types, bad)
	}
	t.Logf("demo statuses %v, webhooks %v", statuses, types)
}
