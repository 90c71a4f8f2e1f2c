package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/events"
)

// runMonitoredNATS starts a nats-server with JetStream and its monitoring port, fsyncing every
// write or not, and returns its client and monitoring URLs.
func runMonitoredNATS(t *testing.T, syncAlways bool) (clientURL, monitorURL string) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
		JetStream: true, StoreDir: t.TempDir(), SyncAlways: syncAlways, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL(), fmt.Sprintf("http://%s", ns.MonitorAddr())
}

// startReceiver runs a receiver with env over the test's defaults and returns it and Run's error.
func startReceiver(t *testing.T, env map[string]string) (*Main, error) {
	t.Helper()
	base := map[string]string{"KNETRECON_RECEIVER_ADDR": "127.0.0.1:0", "KNETRECON_NATS_LISTEN": "127.0.0.1:0",
		"KNETRECON_DATA_DIR": t.TempDir(), "KNETRECON_WEBHOOK_KEYS": oldKey, "KNETRECON_START_TIMEOUT": "3s"}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := ParseConfig(nil, func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	err = m.Run(context.Background())
	t.Cleanup(func() { _ = m.Close() })
	return m, err
}

// TestDurabilityPerServer: the receiver says what its 2xx means on each kind of server, refuses
// to start with KNETRECON_DURABLE=true (the default) where a 2xx would not survive a power cut,
// and starts there when KNETRECON_DURABLE=false accepts it.
func TestDurabilityPerServer(t *testing.T) {
	laxURL, laxMonitor := runMonitoredNATS(t, false)
	syncURL, syncMonitor := runMonitoredNATS(t, true)
	tests := []struct {
		name    string
		give    map[string]string
		want    events.Durability
		refused string // a part of the error, when the receiver must not start
	}{
		{"embedded", nil, events.DurabilityGroupCommit, ""},
		{"embedded sync always", map[string]string{"KNETRECON_NATS_SYNC_ALWAYS": "true"}, events.DurabilitySyncAlways, ""},
		{"embedded not durable", map[string]string{"KNETRECON_DURABLE": "false"}, events.DurabilityInterval, ""},
		{"external sync always", map[string]string{"KNETRECON_NATS_URL": syncURL, "KNETRECON_NATS_MONITOR_URL": syncMonitor},
			events.DurabilitySyncAlways, ""},
		{"external interval refused", map[string]string{"KNETRECON_NATS_URL": laxURL, "KNETRECON_NATS_MONITOR_URL": laxMonitor},
			events.DurabilityInterval, "sync_interval: always"},
		{"external interval accepted", map[string]string{"KNETRECON_NATS_URL": laxURL, "KNETRECON_NATS_MONITOR_URL": laxMonitor,
			"KNETRECON_DURABLE": "false"}, events.DurabilityInterval, ""},
		{"cluster with one lax server refused", map[string]string{"KNETRECON_NATS_URL": syncURL,
			"KNETRECON_NATS_MONITOR_URL": syncMonitor + "," + laxMonitor}, events.DurabilityInterval, "sync_interval 2m0s"},
		{"external unknown refused", map[string]string{"KNETRECON_NATS_URL": laxURL}, events.DurabilityUnknown, "KNETRECON_NATS_MONITOR_URL"},
		{"external declared", map[string]string{"KNETRECON_NATS_URL": laxURL, "KNETRECON_NATS_SYNC_ALWAYS": "true"},
			events.DurabilitySyncAlways, ""},
		{"external unknown accepted", map[string]string{"KNETRECON_NATS_URL": laxURL, "KNETRECON_DURABLE": "false"},
			events.DurabilityUnknown, ""},
		{"monitor unreachable refused", map[string]string{"KNETRECON_NATS_URL": syncURL, "KNETRECON_NATS_MONITOR_URL": "http://127.0.0.1:1",
			"KNETRECON_START_TIMEOUT": "600ms"}, events.DurabilityUnknown, "cannot tell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := startReceiver(t, tt.give)
			if tt.refused != "" {
				if !errors.Is(err, ErrNotDurable) || !strings.Contains(err.Error(), tt.refused) || !strings.Contains(err.Error(), "KNETRECON_DURABLE=false") {
					t.Fatalf("Run: %v, want ErrNotDurable naming %q and KNETRECON_DURABLE=false", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.durable != tt.want {
				t.Fatalf("durability %s, want %s", m.durable, tt.want)
			}
			for _, d := range events.DurabilityModes {
				want := 0.0
				if d == tt.want {
					want = 1
				}
				if got := durabilityGauge(t, m, d); got != want {
					t.Errorf("knetrecon_receiver_durability{mode=%q} = %v, want %v", d, got, want)
				}
			}
		})
	}
}

// durabilityGauge reads knetrecon_receiver_durability{mode} from m's registry.
func durabilityGauge(t *testing.T, m *Main, mode events.Durability) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "knetrecon_receiver_durability" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "mode" && l.GetValue() == string(mode) {
					return mt.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("knetrecon_receiver_durability{mode=%q} not exported", mode)
	return 0
}
