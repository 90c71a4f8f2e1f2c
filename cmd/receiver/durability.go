package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"knetrecon/internal/events"
)

// ErrNotDurable means KNETRECON_DURABLE=true (the default) while the NATS the receiver publishes
// to acknowledges a message before it is on disk, or cannot be shown to: a 2xx would not survive
// a power cut, so the receiver does not start.
var ErrNotDurable = errors.New("KNETRECON_DURABLE=true but NATS does not fsync a webhook before acknowledging it")

// durability finds what a 2xx means on this receiver's NATS:
//   - the embedded server: group commit (KNETRECON_DURABLE, the receiver fsyncs before the 2xx),
//     sync_always (KNETRECON_NATS_SYNC_ALWAYS) or interval;
//   - an external one with KNETRECON_NATS_MONITOR_URL: what every listed server's /varz says;
//   - an external one without: sync_always as declared by KNETRECON_NATS_SYNC_ALWAYS=true
//     (not verified), else unknown.
//
// detail says where the answer came from, for the log.
func (m *Main) durability(ctx context.Context) (mode events.Durability, detail string, err error) {
	cfg := m.Config
	switch {
	case cfg.NATS.URL == "" && cfg.NATSSyncAlways:
		return events.DurabilitySyncAlways, "embedded server with KNETRECON_NATS_SYNC_ALWAYS=true", nil
	case cfg.NATS.URL == "" && cfg.Durable:
		return events.DurabilityGroupCommit, "embedded server: the receiver fsyncs the stream before each 2xx", nil
	case cfg.NATS.URL == "":
		return events.DurabilityInterval, "embedded server with KNETRECON_DURABLE=false: fsynced every 2 minutes", nil
	case len(cfg.NATSMonitorURLs) > 0:
		servers, err := m.readServerSync(ctx)
		if err != nil {
			return events.DurabilityUnknown, "", err
		}
		var said []string
		for _, s := range servers {
			said = append(said, s.String())
		}
		return events.ClusterDurability(servers), "read from /varz: " + strings.Join(said, "; "), nil
	case cfg.NATSSyncAlways:
		return events.DurabilitySyncAlways, "declared by KNETRECON_NATS_SYNC_ALWAYS=true (not verified: set KNETRECON_NATS_MONITOR_URL to read it)", nil
	default:
		return events.DurabilityUnknown, "external NATS without KNETRECON_NATS_MONITOR_URL", nil
	}
}

// readServerSync reads every monitoring address, retrying until StartTimeout: NATS may still be
// starting when the receiver does.
func (m *Main) readServerSync(ctx context.Context) ([]events.ServerSync, error) {
	ctx, cancel := context.WithTimeout(ctx, m.Config.StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 3 * time.Second}
	for {
		var servers []events.ServerSync
		var err error
		for _, u := range m.Config.NATSMonitorURLs {
			var s events.ServerSync
			if s, err = events.ReadServerSync(ctx, client, u); err != nil {
				break
			}
			servers = append(servers, s)
		}
		if err == nil {
			return servers, nil
		}
		m.Log.Warn("NATS monitoring not read, retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("KNETRECON_NATS_MONITOR_URL: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkDurability decides whether the receiver may start on its NATS, logs what a 2xx means
// there and sets knetrecon_receiver_durability.
func (m *Main) checkDurability(ctx context.Context) (events.Durability, error) {
	mode, detail, err := m.durability(ctx)
	if err != nil {
		if m.Config.Durable {
			return mode, fmt.Errorf("%w: cannot tell: %w (or set KNETRECON_DURABLE=false to accept that a power cut may lose webhooks already answered)", ErrNotDurable, err)
		}
		detail = err.Error()
	}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "knetrecon_receiver_durability",
		Help: "1 for the mode that says what the receiver's 2xx means: group_commit or sync_always (on disk, survives a power cut), interval (in the server's memory until its next fsync: survives a crash, not a power cut), unknown (an external NATS the receiver could not read)."},
		[]string{"mode"})
	for _, d := range events.DurabilityModes {
		v := 0.0
		if d == mode {
			v = 1
		}
		gauge.WithLabelValues(string(d)).Set(v)
	}
	m.Registry.MustRegister(gauge)
	if mode.SurvivesPowerCut() {
		m.Log.Info("a 2xx means the webhook is on disk: it survives a power cut", zap.String("durability", string(mode)), zap.String("source", detail))
		return mode, nil
	}
	if !m.Config.Durable {
		m.Log.Warn("KNETRECON_DURABLE=false: a 2xx means the webhook is stored, not that it is on disk; a power cut may lose webhooks already answered",
			zap.String("durability", string(mode)), zap.String("source", detail))
		return mode, nil
	}
	fix := "set `jetstream { sync_interval: always }` on every NATS server (deploy/nats/nats.conf does)"
	if mode == events.DurabilityUnknown {
		fix = "set KNETRECON_NATS_MONITOR_URL to the servers' monitoring addresses (http://nats:8222) so the receiver can read their setting, or KNETRECON_NATS_SYNC_ALWAYS=true if you vouch they run with sync_interval: always"
	}
	return mode, fmt.Errorf("%w (%s; %s): %s, or set KNETRECON_DURABLE=false to accept that a power cut may lose webhooks already answered",
		ErrNotDurable, mode, detail, fix)
}
