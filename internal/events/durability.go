package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Durability says what JetStream's acknowledgement of a webhook means on the server the
// receiver publishes to, and so what the receiver's 2xx means.
type Durability string

// The durability modes, the values of knetrecon_receiver_durability's mode label.
const (
	// DurabilityGroupCommit: the embedded server, and the receiver fsyncs the stream's files
	// before its 2xx; webhooks answered together share one fsync. Survives a power cut.
	DurabilityGroupCommit Durability = "group_commit"
	// DurabilitySyncAlways: the server fsyncs every message before acknowledging it
	// (sync_interval: always). Survives a power cut.
	DurabilitySyncAlways Durability = "sync_always"
	// DurabilityInterval: the server acknowledges what is in its page cache and fsyncs every
	// sync_interval (two minutes by default). Survives a process crash, not a power cut.
	DurabilityInterval Durability = "interval"
	// DurabilityUnknown: the receiver cannot tell (an external server without a monitoring
	// address, or one that did not answer).
	DurabilityUnknown Durability = "unknown"
)

// DurabilityModes lists every mode, for a gauge that says 0 for the inactive ones.
var DurabilityModes = []Durability{DurabilityGroupCommit, DurabilitySyncAlways, DurabilityInterval, DurabilityUnknown}

// SurvivesPowerCut reports whether a webhook acknowledged in mode d is on disk.
func (d Durability) SurvivesPowerCut() bool {
	return d == DurabilityGroupCommit || d == DurabilitySyncAlways
}

// ServerSync is what one nats-server's monitoring endpoint (/varz) says of its JetStream sync.
type ServerSync struct {
	// Server is the server's name; URL the monitoring address it was read from.
	Server, URL string
	// SyncAlways reports sync_interval: always (an fsync before every acknowledgement).
	SyncAlways bool
	// SyncInterval is the background fsync interval (meaningless with SyncAlways).
	SyncInterval time.Duration
}

// Durability is the mode a server with this setting gives.
func (s ServerSync) Durability() Durability {
	if s.SyncAlways {
		return DurabilitySyncAlways
	}
	return DurabilityInterval
}

// String describes the setting for a log line or an error.
func (s ServerSync) String() string {
	if s.SyncAlways {
		return fmt.Sprintf("%s (%s): sync_interval always", s.Server, s.URL)
	}
	return fmt.Sprintf("%s (%s): sync_interval %s", s.Server, s.URL, s.SyncInterval)
}

// ErrNoJetStream means a monitoring endpoint answered for a server without JetStream.
var ErrNoJetStream = errors.New("the server's /varz shows no JetStream configuration")

// ReadServerSync reads monitorURL's /varz (the nats-server monitoring port, e.g.
// http://nats:8222) and returns the server's JetStream sync setting. The JetStream API a client
// sees does not carry it, and the system account's $SYS requests need a system user the
// receiver should not hold: the monitoring endpoint is the honest source.
func ReadServerSync(ctx context.Context, client *http.Client, monitorURL string) (ServerSync, error) {
	u, err := url.Parse(strings.TrimRight(monitorURL, "/") + "/varz")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ServerSync{}, fmt.Errorf("KNETRECON_NATS_MONITOR_URL %q is not an http(s) URL", monitorURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return ServerSync{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return ServerSync{}, fmt.Errorf("read %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ServerSync{}, fmt.Errorf("read %s: %s", u, resp.Status)
	}
	var v struct {
		ServerName string `json:"server_name"`
		JetStream  struct {
			Config *struct {
				SyncInterval time.Duration `json:"sync_interval"`
				SyncAlways   bool          `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&v); err != nil {
		return ServerSync{}, fmt.Errorf("read %s: %w", u, err)
	}
	if v.JetStream.Config == nil {
		return ServerSync{}, fmt.Errorf("read %s: %w", u, ErrNoJetStream)
	}
	return ServerSync{Server: v.ServerName, URL: monitorURL, SyncAlways: v.JetStream.Config.SyncAlways,
		SyncInterval: v.JetStream.Config.SyncInterval}, nil
}

// ClusterDurability is the mode of a set of servers read by ReadServerSync: sync_always only
// when every one of them fsyncs before acknowledging (a replicated stream's acknowledgement
// comes from a quorum, any of which may be the lax one).
func ClusterDurability(servers []ServerSync) Durability {
	if len(servers) == 0 {
		return DurabilityUnknown
	}
	for _, s := range servers {
		if !s.SyncAlways {
			return DurabilityInterval
		}
	}
	return DurabilitySyncAlways
}
