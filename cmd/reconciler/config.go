package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"knetrecon/internal/checkout"
	"knetrecon/internal/config"
	"knetrecon/internal/events"
	"knetrecon/internal/reconcile"
)

// Config is the reconciler's whole configuration, parsed once in main.
type Config struct {
	Ledger            string
	LedgerBusyTimeout time.Duration
	AdminAddr         string
	NATS              events.ConnConfig
	Consumer          events.ConsumerConfig
	BatchSize         int
	FetchWait         time.Duration
	BatchLinger       time.Duration
	ShutdownTimeout   time.Duration
	StartTimeout      time.Duration
	LogLevel          string
	PProf             bool
	LogDevelopment    bool

	// Checkout is the API the sweep asks; Sweep its rules; SweepSchedule the cron spec ("off"
	// runs no sweep); AlertWebhookURL the optional Slack-compatible alert endpoint.
	Checkout checkout.ClientConfig
	// DataDir is the receiver's data directory, where its embedded NATS keeps its token.
	DataDir string
	// WebhookKeys are the receiver's signature keys (KNETRECON_WEBHOOK_KEYS): every message is
	// verified against them before it is applied.
	WebhookKeys string
	// WebhookKeysFile is the file they came from, if any: re-read on SIGHUP and when it changes.
	WebhookKeysFile string
	// FactKeys sign and verify the reconcilers' own facts (KNETRECON_FACT_KEYS): every reconciler
	// applying the same stream shares them. FactKeysFile is their file, re-read like the webhook keys.
	FactKeys     string
	FactKeysFile string
	// SweepLeaseTTL is how long the sweep's lease lives without a renewal (KNETRECON_SWEEP_LEASE_TTL):
	// a dead leader's sweep is taken over within about this.
	SweepLeaseTTL time.Duration
	// DeskToken protects the desk page when the admin address is not loopback; its operator is "desk".
	DeskToken string
	// DeskTokensFile holds per-operator tokens, lines name:token (KNETRECON_DESK_TOKENS_FILE);
	// DeskOperatorHeader names an authenticating proxy's operator header; DeskHosts are the Host
	// values the desk answers besides loopback names (see package desk).
	DeskTokensFile, DeskOperatorHeader, DeskHosts string

	Sweep           reconcile.SweepConfig
	SweepSchedule   string
	AlertWebhookURL string
	// ReceiverHealthURL is the receiver's /readyz, shown on the desk (KNETRECON_RECEIVER_HEALTH_URL).
	ReceiverHealthURL string

	// ReportLocation is the time zone of the daily reports' days (KNETRECON_REPORT_TZ); run writes
	// them into ReportDir on ReportSchedule, a cron spec in that zone ("off": none).
	ReportTZ       string
	ReportLocation *time.Location
	ReportDir      string
	ReportSchedule string
	// ReportMode is the permission bits of the report files written (KNETRECON_REPORT_MODE).
	ReportMode os.FileMode

	command string
}

// SweepOn reports whether `reconciler run` schedules the sweep.
func (c Config) SweepOn() bool {
	return !strings.EqualFold(c.SweepSchedule, "off") && c.SweepSchedule != ""
}

// ParseConfig reads flags from args and KNETRECON_… variables through getenv. It returns the
// arguments left after the flags (a subcommand's operands).
func ParseConfig(name string, args []string, getenv func(string) string, extra func(*flag.FlagSet)) (Config, []string, error) {
	var c Config
	fs := flag.NewFlagSet("reconciler "+name, flag.ContinueOnError)
	b := config.NewBinder(fs, getenv)
	def := events.DefaultConsumerConfig()
	b.String(&c.Ledger, "ledger", "KNETRECON_LEDGER", "./data/ledger.db", "SQLite ledger file")
	b.Duration(&c.LedgerBusyTimeout, "ledger-busy-timeout", "KNETRECON_LEDGER_BUSY_TIMEOUT", 5*time.Second, "how long a write waits for another process's lock before the batch is retried later")
	b.String(&c.AdminAddr, "admin-addr", "KNETRECON_ADMIN_ADDR", "127.0.0.1:9090", "address for /healthz, /readyz and /metrics")
	b.String(&c.NATS.URL, "nats-url", "KNETRECON_NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s); the default is the receiver's embedded server")
	c.NATS.BindSecurity(b)
	b.Secret(&c.DeskToken, "desk-token", "KNETRECON_DESK_TOKEN", "token the desk page asks for (basic-auth password or bearer; the audit trail's operator: desk); off a loopback KNETRECON_ADMIN_ADDR the page is off without it, KNETRECON_DESK_TOKENS_FILE or KNETRECON_DESK_OPERATOR_HEADER")
	b.String(&c.DeskTokensFile, "desk-tokens-file", "KNETRECON_DESK_TOKENS_FILE", "", "file of per-operator desk tokens, lines name:token (16+ characters): the audit trail records the name of the token used")
	b.String(&c.DeskOperatorHeader, "desk-operator-header", "KNETRECON_DESK_OPERATOR_HEADER", "", "header an authenticating proxy sets to the operator's name (e.g. X-Forwarded-User); trusted only when set: the desk must be reachable through that proxy alone")
	b.String(&c.DeskHosts, "desk-hosts", "KNETRECON_DESK_HOSTS", "", "comma-separated host or host:port the desk answers besides loopback names (any other Host is refused: DNS rebinding)")
	b.String(&c.DataDir, "data-dir", "KNETRECON_DATA_DIR", "./data", "the receiver's data directory on this machine: its embedded NATS token is read from there when no other NATS credential is set")
	b.String(&c.Consumer.Durable, "consumer", "KNETRECON_CONSUMER", def.Durable, "durable JetStream consumer name")
	b.Duration(&c.Consumer.AckWait, "ack-wait", "KNETRECON_ACK_WAIT", def.AckWait, "redeliver a message not acked within this")
	b.Int(&c.Consumer.MaxDeliver, "max-deliver", "KNETRECON_MAX_DELIVER", def.MaxDeliver, "dead-letter an event after it panicked this many times while being written (only such deterministic failures count; a failing ledger never does)")
	b.Int(&c.Consumer.MaxAckPending, "max-ack-pending", "KNETRECON_MAX_ACK_PENDING", def.MaxAckPending, "messages delivered and not yet acked")
	b.Int(&c.BatchSize, "batch-size", "KNETRECON_BATCH_SIZE", 256, "messages applied per SQLite transaction")
	b.Duration(&c.FetchWait, "fetch-wait", "KNETRECON_FETCH_WAIT", time.Second, "wait this long for a first message before checking for shutdown")
	b.Duration(&c.BatchLinger, "batch-linger", "KNETRECON_BATCH_LINGER", 5*time.Millisecond, "after a first message, wait this long for more to fill the batch")
	b.Duration(&c.ShutdownTimeout, "shutdown-timeout", "KNETRECON_SHUTDOWN_TIMEOUT", 15*time.Second, "how long shutdown waits to finish the batch in hand")
	b.Duration(&c.StartTimeout, "start-timeout", "KNETRECON_START_TIMEOUT", 30*time.Second, "how long start-up waits for NATS and the stream")
	b.Bool(&c.PProf, "pprof", "KNETRECON_PPROF", false, "serve /debug/pprof/ on the admin address (for profiling)")
	b.String(&c.LogLevel, "log-level", "KNETRECON_LOG_LEVEL", "info", "debug, info, warn or error")
	b.Bool(&c.LogDevelopment, "log-dev", "KNETRECON_LOG_DEV", false, "human-readable console logs instead of JSON")
	b.String(&c.Checkout.BaseURL, "checkout-url", "KNETRECON_CHECKOUT_URL", checkout.DefaultBaseURL, "Checkout.com API base URL (the simulator: http://127.0.0.1:8090)")
	b.Secret(&c.WebhookKeys, "webhook-keys", "KNETRECON_WEBHOOK_KEYS", "the receiver's webhook signature keys, comma-separated: every message is verified against them before it is applied (required by run, replay and dlq replay)")
	b.Secret(&c.FactKeys, "fact-keys", "KNETRECON_FACT_KEYS", "the reconcilers' own HMAC keys, comma-separated, shared by every reconciler of the stream: the first signs the sweep's and the operators' facts, all verify them (default: a key generated once in KNETRECON_DATA_DIR/fact.keys, right for one machine)")
	b.Duration(&c.SweepLeaseTTL, "sweep-lease-ttl", "KNETRECON_SWEEP_LEASE_TTL", 10*time.Second, "the sweep's lease in the NATS KV bucket KNETRECON_LEASES lives this long unrenewed: one reconciler sweeps at a time, another takes over within about this after it dies")
	b.Secret(&c.Checkout.SecretKey, "checkout-secret-key", "KNETRECON_CHECKOUT_SECRET_KEY", "Checkout.com secret key sk_… (required by run and sweep)")
	b.Bool(&c.Checkout.BareKey, "checkout-bare-key", "KNETRECON_CHECKOUT_BARE_KEY", false, "send the key without Bearer (legacy ABC accounts)")
	b.Duration(&c.Checkout.Timeout, "checkout-timeout", "KNETRECON_CHECKOUT_TIMEOUT", 10*time.Second, "timeout of one API request")
	var rateLimit int
	b.Int(&rateLimit, "checkout-rate-limit", "KNETRECON_CHECKOUT_RATE_LIMIT", 50, "API requests per second, all callers together (Checkout.com allows ~100)")
	sw := reconcile.DefaultSweepConfig()
	b.String(&c.SweepSchedule, "sweep-schedule", "KNETRECON_SWEEP_SCHEDULE", "@every 1m", "cron spec of the sweep (5 fields, or @every 30s); off disables it")
	b.Duration(&c.Sweep.PendingTimeout, "pending-timeout", "KNETRECON_PENDING_TIMEOUT", sw.PendingTimeout, "age past which an open payment is asked about (KNET's seven minutes)")
	b.Duration(&c.Sweep.VoidGrace, "void-grace", "KNETRECON_VOID_GRACE", sw.VoidGrace, "wait this long past the timeout for Checkout.com's own expiry before voiding")
	b.Bool(&c.Sweep.VoidPending, "void-pending", "KNETRECON_VOID_PENDING", sw.VoidPending, "void payments still Pending past timeout + grace")
	b.Duration(&c.Sweep.StuckAfter, "stuck-after", "KNETRECON_STUCK_AFTER", sw.StuckAfter, "a payment open longer than this is stuck")
	var backoff string
	b.String(&backoff, "sweep-backoff", "KNETRECON_SWEEP_BACKOFF", "1,1.15,1.4,2,4,8", "when to check, in multiples of the timeout from the payment's age; then hourly, then daily")
	b.Int(&c.Sweep.MaxErrors, "sweep-max-errors", "KNETRECON_SWEEP_MAX_ERRORS", sw.MaxErrors, "failed checks in a row that make a payment stuck")
	var verify string
	b.String(&verify, "verify-after", "KNETRECON_VERIFY_AFTER", "31h,8d,32d", "verify a final payment this long after its latest event (later steps while it holds money); off disables")
	b.Duration(&c.Sweep.MaxSkew, "max-clock-skew", "KNETRECON_MAX_CLOCK_SKEW", sw.MaxSkew, "an event dated further ahead of its receipt is applied timed by its receipt and flagged clock_skew (set for every ledger by the sweep's holder)")
	b.Int(&c.Sweep.VerifyPerSweep, "verify-per-sweep", "KNETRECON_VERIFY_PER_SWEEP", sw.VerifyPerSweep, "verifications of final payments in one sweep at most (the rest wait for the next)")
	b.Int(&c.Sweep.Concurrency, "sweep-concurrency", "KNETRECON_SWEEP_CONCURRENCY", sw.Concurrency, "API calls in flight during a sweep")
	b.String(&c.ReceiverHealthURL, "receiver-health-url", "KNETRECON_RECEIVER_HEALTH_URL", "", "the receiver's readiness URL (e.g. http://127.0.0.1:8080/readyz) the desk shows as the receiver's health; empty: not shown")
	b.String(&c.AlertWebhookURL, "alert-webhook-url", "KNETRECON_ALERT_WEBHOOK_URL", "", "Slack-compatible URL for alerts on stuck payments and money discrepancies (see the runbook); empty: none")
	b.String(&c.ReportTZ, "report-tz", "KNETRECON_REPORT_TZ", "Asia/Kuwait", "time zone of the daily reports' days")
	b.String(&c.ReportDir, "report-dir", "KNETRECON_REPORT_DIR", "", "where run writes the daily reports (<date>.json, <date>.csv); default: reports/ beside the ledger")
	b.String(&c.ReportSchedule, "report-schedule", "KNETRECON_REPORT_SCHEDULE", "15 0 * * *", "cron spec, in the report time zone, of writing yesterday's report; off disables it")
	reportMode := defaultReportMode
	b.String(&reportMode, "report-mode", "KNETRECON_REPORT_MODE", defaultReportMode, "octal mode of the report files written (never group- or world-writable)")
	if extra != nil {
		extra(fs)
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			err = flagError{err}
		}
		return c, nil, err
	}
	if err := b.Finish(); err != nil {
		return c, nil, err
	}
	c.WebhookKeysFile = b.FileOf("KNETRECON_WEBHOOK_KEYS")
	c.FactKeysFile = b.FileOf("KNETRECON_FACT_KEYS")
	c.NATS.Name = "knetrecon-reconciler"
	c.command = name
	c.Checkout.RateLimit = float64(rateLimit)
	c.Sweep.PageSize = sw.PageSize
	c.Sweep.Backoff = nil
	for _, f := range strings.Split(backoff, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return c, nil, fmt.Errorf("KNETRECON_SWEEP_BACKOFF %q: %q is not a number", backoff, f)
		}
		c.Sweep.Backoff = append(c.Sweep.Backoff, x)
	}
	if c.Sweep.VerifyAfter, err = parseSteps(verify); err != nil {
		return c, nil, fmt.Errorf("KNETRECON_VERIFY_AFTER %q: %w", verify, err)
	}
	if c.ReportDir == "" {
		c.ReportDir = filepath.Join(filepath.Dir(c.Ledger), "reports")
	}
	if c.ReportMode, err = parseReportMode(reportMode); err != nil {
		return c, nil, err
	}
	if c.ReportLocation, err = time.LoadLocation(c.ReportTZ); err != nil {
		return c, nil, fmt.Errorf("KNETRECON_REPORT_TZ %q is not a time zone (like Asia/Kuwait or UTC)", c.ReportTZ)
	}
	return c, rest, c.Validate()
}

// flagError is a command line the flags could not read (a flag not defined, a value of the wrong
// kind): the command's usage follows it, and the exit status is ExitUsage.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }

func (e flagError) Unwrap() error { return e.err }

// parseSteps reads a comma-separated list of durations, which may also be whole days ("8d");
// "off" or empty is none.
func parseSteps(s string) ([]time.Duration, error) {
	if s = strings.TrimSpace(s); s == "" || s == "off" {
		return nil, nil
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		var d time.Duration
		var err error
		if days, ok := strings.CutSuffix(f, "d"); ok {
			var n int
			if n, err = strconv.Atoi(days); err == nil {
				d = time.Duration(n) * 24 * time.Hour
			}
		} else {
			d, err = time.ParseDuration(f)
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (like 31h or 8d)", f)
		}
		out = append(out, d)
	}
	return out, nil
}

// parseInterspersed parses flags that may come after operands: `payment pay_x --json`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// Validate checks the configuration; each message names the variable to fix.
func (c Config) Validate() error {
	var errs []error
	if c.Ledger == "" || c.Ledger == ":memory:" || strings.HasPrefix(c.Ledger, "file::memory:") {
		errs = append(errs, fmt.Errorf("KNETRECON_LEDGER must be a file path, got %q", c.Ledger))
	}
	if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
		errs = append(errs, fmt.Errorf("KNETRECON_ADMIN_ADDR %q is not host:port", c.AdminAddr))
	}
	if c.NATS.URL == "" {
		errs = append(errs, errors.New("KNETRECON_NATS_URL must not be empty"))
	}
	if err := c.Consumer.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("KNETRECON_BATCH_SIZE must be 1 to 10000, got %d", c.BatchSize))
	}
	if c.Consumer.MaxAckPending < 2*c.BatchSize {
		errs = append(errs, fmt.Errorf("KNETRECON_MAX_ACK_PENDING (%d) must be at least twice KNETRECON_BATCH_SIZE (%d)", c.Consumer.MaxAckPending, c.BatchSize))
	}
	for name, d := range map[string]time.Duration{
		"KNETRECON_LEDGER_BUSY_TIMEOUT": c.LedgerBusyTimeout, "KNETRECON_FETCH_WAIT": c.FetchWait,
		"KNETRECON_SHUTDOWN_TIMEOUT": c.ShutdownTimeout, "KNETRECON_START_TIMEOUT": c.StartTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if (c.command == "run" || c.command == "replay" || c.command == "rebuild") && len(checkout.ParseKeys(c.WebhookKeys)) == 0 {
		errs = append(errs, errors.New("no webhook signature key: set KNETRECON_WEBHOOK_KEYS (or KNETRECON_WEBHOOK_KEYS_FILE) to the receiver's keys; the reconciler verifies every message's Cko-Signature before applying it"))
	}
	needsAPI := c.command == "sweep" || c.command == "reconcile" || (c.command == "run" && c.SweepOn())
	if needsAPI && c.Checkout.SecretKey == "" {
		errs = append(errs, errors.New("no Checkout.com secret key for the sweep: set KNETRECON_CHECKOUT_SECRET_KEY or KNETRECON_CHECKOUT_SECRET_KEY_FILE (or KNETRECON_SWEEP_SCHEDULE=off to run without the sweep)"))
	}
	if needsAPI {
		if err := c.Sweep.Validate(); err != nil {
			errs = append(errs, err)
		}
		if c.Checkout.RateLimit <= 0 || c.Checkout.RateLimit > 100 {
			errs = append(errs, fmt.Errorf("KNETRECON_CHECKOUT_RATE_LIMIT must be 1 to 100 requests/s, got %v", c.Checkout.RateLimit))
		}
		if u, err := url.Parse(c.Checkout.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("KNETRECON_CHECKOUT_URL %q is not an http(s) URL", c.Checkout.BaseURL))
		}
	}
	if c.command == "run" && c.SweepOn() {
		if _, err := cron.ParseStandard(c.SweepSchedule); err != nil {
			errs = append(errs, fmt.Errorf("KNETRECON_SWEEP_SCHEDULE %q: %w", c.SweepSchedule, err))
		}
	}
	if c.command == "run" && c.ReportsOn() {
		if _, err := cron.ParseStandard(c.ReportSchedule); err != nil {
			errs = append(errs, fmt.Errorf("KNETRECON_REPORT_SCHEDULE %q: %w", c.ReportSchedule, err))
		}
	}
	if c.ReceiverHealthURL != "" {
		if u, err := url.Parse(c.ReceiverHealthURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("KNETRECON_RECEIVER_HEALTH_URL is not an http(s) URL"))
		}
	}
	if c.AlertWebhookURL != "" {
		if u, err := url.Parse(c.AlertWebhookURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("KNETRECON_ALERT_WEBHOOK_URL is not an http(s) URL"))
		}
	}
	if c.SweepLeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("KNETRECON_SWEEP_LEASE_TTL must be at least 1s, got %s", c.SweepLeaseTTL))
	}
	if c.BatchLinger < 0 || c.BatchLinger >= c.FetchWait {
		errs = append(errs, fmt.Errorf("KNETRECON_BATCH_LINGER must be at least 0 and below KNETRECON_FETCH_WAIT, got %s", c.BatchLinger))
	}
	return errors.Join(errs...)
}

// natsConn is how to reach NATS: the configured credentials, or, when none is set, the
// reconcilers' password of the receiver's embedded server found in KNETRECON_DATA_DIR, as the
// user named like the durable consumer (a receiver and a reconciler given the same data directory
// on one machine connect with no further setting). A data directory of an older receiver, with
// only its token, gives the token.
func (c Config) natsConn() (events.ConnConfig, error) {
	conn := c.NATS
	if conn.Token != "" || conn.CredsFile != "" || conn.NKeySeedFile != "" || conn.User != "" {
		return conn, nil
	}
	pass, err := events.ReadEmbeddedPassword(c.DataDir, events.EmbeddedReconcilerFile)
	if err != nil {
		return conn, fmt.Errorf("KNETRECON_DATA_DIR: %w", err)
	}
	if pass != "" {
		conn.User, conn.Password = c.Consumer.Durable, pass
		return conn, nil
	}
	tok, err := events.ReadEmbeddedToken(c.DataDir)
	if err != nil {
		return conn, fmt.Errorf("KNETRECON_DATA_DIR: %w", err)
	}
	conn.Token = tok
	return conn, nil
}
