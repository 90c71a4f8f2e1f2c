package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"knetrecon/internal/checkout"
	"knetrecon/internal/config"
	"knetrecon/internal/events"
)

// Config is the receiver's whole configuration, parsed once in main.
type Config struct {
	Addr          string
	WebhookPath   string
	MetricsAddr   string
	WebhookKeys   string
	Authorization string
	// WebhookKeysFile and AuthorizationFile are the files the secrets came from, if any: the
	// receiver re-reads them on SIGHUP and when they change.
	WebhookKeysFile, AuthorizationFile string
	MaxBodyBytes                       int64
	PublishTimeout                     time.Duration
	RetryAfter                         time.Duration

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	StartTimeout      time.Duration

	DataDir        string
	NATS           events.ConnConfig
	NATSListen     string
	NATSSyncAlways bool
	// NATSMonitorURLs are the external servers' monitoring addresses (comma-separated in
	// KNETRECON_NATS_MONITOR_URL): their /varz says whether they fsync before acknowledging.
	NATSMonitorURLs []string
	// Keeper is the credential Room purges applied history with (events.RoleKeeper), on a
	// connection of its own: the receiver's own credential may not purge.
	Keeper events.ConnConfig
	// Durable promises that a 2xx survives a power cut: group commit on the embedded server; on
	// an external one the receiver refuses to start unless the servers fsync before acknowledging.
	Durable bool
	Stream  events.StreamConfig
	// BacklogLimit is the percentage of the stream's MaxBytes the unapplied backlog may reach
	// before webhooks are refused; BacklogCheck how often the backlog is read.
	// IntakeBrokenAfter fails /healthz once every publish has failed this long.
	IntakeBrokenAfter time.Duration
	BacklogLimit      int
	BacklogCheck      time.Duration
	PProf             bool
	LogLevel          string
	LogDevelopment    bool
}

// ParseConfig reads flags from args and KNETRECON_… variables through getenv.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	config.ShortUsage(fs, "receiver", args, os.Stderr)
	b := config.NewBinder(fs, getenv)
	def := events.DefaultStreamConfig()
	b.String(&c.Addr, "addr", "KNETRECON_RECEIVER_ADDR", ":8080", "address for webhooks, /healthz, /readyz (and /metrics)")
	b.String(&c.WebhookPath, "webhook-path", "KNETRECON_WEBHOOK_PATH", "/webhooks/checkout", "path Checkout.com posts webhooks to")
	b.String(&c.MetricsAddr, "metrics-addr", "KNETRECON_METRICS_ADDR", "", "separate admin address for /metrics; empty serves it on the webhook address")
	b.Secret(&c.WebhookKeys, "webhook-keys", "KNETRECON_WEBHOOK_KEYS", "webhook signature keys, comma-separated (several during a rotation); required")
	b.Secret(&c.Authorization, "webhook-authorization", "KNETRECON_WEBHOOK_AUTHORIZATION", "value the Authorization header must carry; empty disables the check")
	b.Int64(&c.MaxBodyBytes, "max-body-bytes", "KNETRECON_MAX_BODY_BYTES", 1<<20-4096, "largest webhook body accepted; larger gets 413 (the default leaves room for headers within NATS's default 1 MiB max_payload)")
	b.Duration(&c.PublishTimeout, "publish-timeout", "KNETRECON_PUBLISH_TIMEOUT", 3*time.Second, "wait at most this for JetStream's acknowledgement, then answer 503")
	b.Duration(&c.RetryAfter, "retry-after", "KNETRECON_RETRY_AFTER", 5*time.Second, "Retry-After sent with a 503")
	b.Duration(&c.ReadHeaderTimeout, "read-header-timeout", "KNETRECON_READ_HEADER_TIMEOUT", 5*time.Second, "HTTP read-header timeout")
	b.Duration(&c.ReadTimeout, "read-timeout", "KNETRECON_READ_TIMEOUT", 10*time.Second, "HTTP read timeout (headers and body)")
	b.Duration(&c.WriteTimeout, "write-timeout", "KNETRECON_WRITE_TIMEOUT", 15*time.Second, "HTTP write timeout")
	b.Duration(&c.IdleTimeout, "idle-timeout", "KNETRECON_IDLE_TIMEOUT", 90*time.Second, "HTTP keep-alive idle timeout")
	b.Duration(&c.ShutdownTimeout, "shutdown-timeout", "KNETRECON_SHUTDOWN_TIMEOUT", 15*time.Second, "how long shutdown waits for in-flight requests")
	b.Duration(&c.StartTimeout, "start-timeout", "KNETRECON_START_TIMEOUT", 30*time.Second, "how long start-up waits for NATS and the stream")
	b.String(&c.DataDir, "data-dir", "KNETRECON_DATA_DIR", "./data", "local data: the embedded NATS store lives in <dir>/nats")
	b.String(&c.NATS.URL, "nats-url", "KNETRECON_NATS_URL", "", "external NATS URL(s); empty runs an embedded nats-server")
	b.String(&c.NATSListen, "nats-listen", "KNETRECON_NATS_LISTEN", "127.0.0.1:4222", "embedded nats-server's client address")
	b.Bool(&c.Durable, "durable", "KNETRECON_DURABLE", true, "answer 2xx only once the webhook is on disk: the embedded server fsyncs before the 2xx (webhooks answered together share one fsync); an external NATS must fsync before acknowledging (sync_interval: always, read from KNETRECON_NATS_MONITOR_URL) or the receiver refuses to start (false: accept that a power cut may lose webhooks already answered)")
	b.Bool(&c.NATSSyncAlways, "nats-sync-always", "KNETRECON_NATS_SYNC_ALWAYS", false, "embedded server: fsync every message before acknowledging; external NATS without KNETRECON_NATS_MONITOR_URL: the operator declares its servers run with sync_interval: always")
	var monitor string
	b.String(&monitor, "nats-monitor-url", "KNETRECON_NATS_MONITOR_URL", "", "external NATS: the servers' monitoring addresses (http://nats:8222, comma-separated in a cluster): the receiver reads /varz at start to learn whether they fsync before acknowledging")
	c.NATS.BindSecurity(b)
	b.String(&c.Keeper.User, "nats-keeper-user", "KNETRECON_NATS_KEEPER_USER", events.RoleKeeper, "external NATS: the user that makes room in a full stream by purging applied history (only at or below the slowest ledger's ack floor), on a connection of its own")
	b.Secret(&c.Keeper.Password, "nats-keeper-password", "KNETRECON_NATS_KEEPER_PASSWORD", "external NATS: the keeper user's password; without it room is made with the receiver's own credential (refused when it may not purge: a stream full of applied history then answers 503)")
	b.Int(&c.Stream.Replicas, "stream-replicas", "KNETRECON_STREAM_REPLICAS", def.Replicas, "stream replicas (3 in a NATS cluster)")
	b.Duration(&c.Stream.MaxAge, "stream-max-age", "KNETRECON_STREAM_MAX_AGE", def.MaxAge, "how long the stream keeps events (at least a week)")
	b.Int64(&c.Stream.MaxBytes, "stream-max-bytes", "KNETRECON_STREAM_MAX_BYTES", def.MaxBytes, "stream size limit; when reached, the oldest (applied) messages are discarded (-1: none)")
	b.Duration(&c.IntakeBrokenAfter, "intake-broken-after", "KNETRECON_INTAKE_BROKEN_AFTER", 2*time.Minute, "/healthz fails once every publish has failed this long (or the NATS connection is closed for good), so the orchestrator restarts the receiver")
	b.Int(&c.BacklogLimit, "stream-backlog-limit", "KNETRECON_STREAM_BACKLOG_LIMIT", 90, "answer 503 while messages not yet applied fill this percentage of KNETRECON_STREAM_MAX_BYTES")
	b.Duration(&c.BacklogCheck, "stream-backlog-check", "KNETRECON_STREAM_BACKLOG_CHECK", 500*time.Millisecond, "how often the unapplied backlog is read from the stream")
	b.Duration(&c.Stream.Duplicates, "stream-duplicate-window", "KNETRECON_STREAM_DUPLICATE_WINDOW", def.Duplicates, "de-duplication window by event id (at least 48h)")
	b.Bool(&c.PProf, "pprof", "KNETRECON_PPROF", false, "serve /debug/pprof/ beside /metrics (for profiling; keep off on a public port)")
	b.String(&c.LogLevel, "log-level", "KNETRECON_LOG_LEVEL", "info", "debug, info, warn or error")
	b.Bool(&c.LogDevelopment, "log-dev", "KNETRECON_LOG_DEV", false, "human-readable console logs instead of JSON")
	if err := fs.Parse(args); err != nil {
		return c, config.UsageHint("receiver", err)
	}
	if err := b.Finish(); err != nil {
		return c, err
	}
	c.WebhookKeysFile, c.AuthorizationFile = b.FileOf("KNETRECON_WEBHOOK_KEYS"), b.FileOf("KNETRECON_WEBHOOK_AUTHORIZATION")
	c.NATS.Name = "knetrecon-receiver"
	for _, u := range strings.Split(monitor, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.NATSMonitorURLs = append(c.NATSMonitorURLs, u)
		}
	}
	return c, c.Validate()
}

// Validate checks the configuration; each message names the variable to fix.
func (c Config) Validate() error {
	var errs []error
	if len(checkout.ParseKeys(c.WebhookKeys)) == 0 {
		errs = append(errs, errors.New("no webhook signature key: set KNETRECON_WEBHOOK_KEYS (comma-separated) or KNETRECON_WEBHOOK_KEYS_FILE"))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("KNETRECON_RECEIVER_ADDR %q is not host:port", c.Addr))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("KNETRECON_METRICS_ADDR %q is not host:port", c.MetricsAddr))
		}
	}
	if !strings.HasPrefix(c.WebhookPath, "/") || c.WebhookPath == "/healthz" || c.WebhookPath == "/readyz" || c.WebhookPath == "/metrics" {
		errs = append(errs, fmt.Errorf("KNETRECON_WEBHOOK_PATH %q must start with / and not be /healthz, /readyz or /metrics", c.WebhookPath))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("KNETRECON_MAX_BODY_BYTES must be between 1024 and 67108864, got %d", c.MaxBodyBytes))
	}
	if c.PublishTimeout <= 0 || c.PublishTimeout >= 9*time.Second {
		errs = append(errs, fmt.Errorf("KNETRECON_PUBLISH_TIMEOUT must be above 0 and well under Checkout.com's 10s, got %s", c.PublishTimeout))
	}
	if c.NATS.URL == "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			errs = append(errs, fmt.Errorf("KNETRECON_NATS_LISTEN %q is not host:port", c.NATSListen))
		}
		if c.DataDir == "" {
			errs = append(errs, errors.New("KNETRECON_DATA_DIR must not be empty with the embedded NATS"))
		}
	}
	for _, m := range c.NATSMonitorURLs {
		if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("KNETRECON_NATS_MONITOR_URL %q is not an http(s) URL", m))
		}
	}
	if len(c.NATSMonitorURLs) > 0 && c.NATS.URL == "" {
		errs = append(errs, errors.New("KNETRECON_NATS_MONITOR_URL is for an external NATS: set KNETRECON_NATS_URL too, or unset it (the embedded server needs none)"))
	}
	for name, d := range map[string]time.Duration{
		"KNETRECON_READ_HEADER_TIMEOUT": c.ReadHeaderTimeout, "KNETRECON_READ_TIMEOUT": c.ReadTimeout,
		"KNETRECON_WRITE_TIMEOUT": c.WriteTimeout, "KNETRECON_IDLE_TIMEOUT": c.IdleTimeout,
		"KNETRECON_SHUTDOWN_TIMEOUT": c.ShutdownTimeout, "KNETRECON_START_TIMEOUT": c.StartTimeout,
		"KNETRECON_INTAKE_BROKEN_AFTER": c.IntakeBrokenAfter,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.BacklogLimit < 10 || c.BacklogLimit > 99 {
		errs = append(errs, fmt.Errorf("KNETRECON_STREAM_BACKLOG_LIMIT must be a percentage from 10 to 99, got %d", c.BacklogLimit))
	}
	if c.BacklogCheck < 10*time.Millisecond || c.BacklogCheck > time.Minute {
		errs = append(errs, fmt.Errorf("KNETRECON_STREAM_BACKLOG_CHECK must be from 10ms to 1m, got %s", c.BacklogCheck))
	}
	if err := c.Stream.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// natsStoreDir is where the embedded server keeps JetStream's files.
func (c Config) natsStoreDir() string { return filepath.Join(c.DataDir, "nats") }
