package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/config"
)

// Config is the simulator's whole configuration, parsed once in main. Every setting is a flag
// and a KNETRECON_CKOSIM_… variable (secrets also …_FILE).
type Config struct {
	Addr                 string
	PublicURL            string
	SecretKey            string
	Auth                 string
	WebhookURL           string
	WebhookKey           string
	WebhookAuthorization string
	Expiry               time.Duration
	TimeScale            float64
	DeliveryTimeout      time.Duration
	Seed                 int64
	Faults               ckosim.Faults
	Demo                 int
	// DemoPrefix starts every demo reference (DEMO-0001…); make run gives each run its own, so
	// that a reference names one payment however many runs share a ledger.
	DemoPrefix      string
	DemoInterval    time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
	LogDevelopment  bool
}

// rate is a float setting bound as text, since the binder has no float kind.
type rate struct {
	text string
	env  string
	dst  *float64
}

// ParseConfig reads flags from args and KNETRECON_CKOSIM_… variables through getenv.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("ckosim", flag.ContinueOnError)
	config.ShortUsage(fs, "ckosim", args, os.Stderr)
	b := config.NewBinder(fs, getenv)
	var maxDelay, retryAfter, latency time.Duration
	rates := []*rate{
		{env: "KNETRECON_CKOSIM_TIME_SCALE", dst: &c.TimeScale},
		{env: "KNETRECON_CKOSIM_DROP_RATE", dst: &c.Faults.DropRate},
		{env: "KNETRECON_CKOSIM_DUPLICATE_RATE", dst: &c.Faults.DuplicateRate},
		{env: "KNETRECON_CKOSIM_DELAY_RATE", dst: &c.Faults.DelayRate},
		{env: "KNETRECON_CKOSIM_API_5XX_RATE", dst: &c.Faults.API5xxRate},
		{env: "KNETRECON_CKOSIM_API_429_RATE", dst: &c.Faults.API429Rate},
	}
	b.String(&c.Addr, "addr", "KNETRECON_CKOSIM_ADDR", "127.0.0.1:8090", "address serving the API, the KNET page and /_sim/")
	b.String(&c.PublicURL, "public-url", "KNETRECON_CKOSIM_PUBLIC_URL", "", "base URL put in links and the KNET redirect; empty: http://<addr>")
	b.Secret(&c.SecretKey, "secret-key", "KNETRECON_CKOSIM_SECRET_KEY", "API key the simulator accepts (sk_…); empty accepts any key")
	b.String(&c.Auth, "auth", "KNETRECON_CKOSIM_AUTH", "bearer", `Authorization form accepted: bearer ("Bearer sk_…"), bare (legacy ABC) or either`)
	b.String(&c.WebhookURL, "webhook-url", "KNETRECON_CKOSIM_WEBHOOK_URL", "", "where webhooks are posted, e.g. http://127.0.0.1:8080/webhooks/checkout; empty: recorded only")
	b.Secret(&c.WebhookKey, "webhook-key", "KNETRECON_CKOSIM_WEBHOOK_KEY", "key signing each webhook (Cko-Signature); must be one of the receiver's KNETRECON_WEBHOOK_KEYS")
	b.Secret(&c.WebhookAuthorization, "webhook-authorization", "KNETRECON_CKOSIM_WEBHOOK_AUTHORIZATION", "Authorization header sent with each webhook; empty: none")
	b.Duration(&c.Expiry, "expiry", "KNETRECON_CKOSIM_EXPIRY", ckosim.DefaultExpiry, "KNET page limit: completing later than this after landing expires the payment")
	b.String(&rates[0].text, "time-scale", rates[0].env, "1", "multiplier of the webhook retry schedule and fault delays (0.001 turns 5m into 300ms)")
	b.Duration(&c.DeliveryTimeout, "delivery-timeout", "KNETRECON_CKOSIM_DELIVERY_TIMEOUT", 10*time.Second, "a webhook not answered within this counts as failed")
	b.Int64(&c.Seed, "seed", "KNETRECON_CKOSIM_SEED", 1, "seed of ids, faults and the demo: the same seed gives the same run")
	b.String(&rates[1].text, "drop-rate", rates[1].env, "0", "share of webhooks lost (never delivered), 0..1")
	b.String(&rates[2].text, "duplicate-rate", rates[2].env, "0", "share of webhooks delivered twice, 0..1")
	b.String(&rates[3].text, "delay-rate", rates[3].env, "0", "share of webhooks held back up to --max-delay (reordering them), 0..1")
	b.Duration(&maxDelay, "max-delay", "KNETRECON_CKOSIM_MAX_DELAY", 30*time.Second, "longest hold-back of a delayed webhook (scaled by --time-scale)")
	b.String(&rates[4].text, "api-5xx-rate", rates[4].env, "0", "share of API requests answered 500/502/503, 0..1")
	b.String(&rates[5].text, "api-429-rate", rates[5].env, "0", "share of API requests answered 429, 0..1")
	b.Duration(&retryAfter, "retry-after", "KNETRECON_CKOSIM_RETRY_AFTER", time.Second, "Retry-After sent with an injected 429")
	b.Duration(&latency, "latency", "KNETRECON_CKOSIM_LATENCY", 0, "extra latency added to every API answer")
	b.Bool(&c.Faults.VoidForbidden, "void-forbidden", "KNETRECON_CKOSIM_VOID_FORBIDDEN", false, "answer every void with 403")
	b.Int(&c.Demo, "demo", "KNETRECON_CKOSIM_DEMO", 0, "create this many KNET payments and drive them through a realistic mix of outcomes")
	b.String(&c.DemoPrefix, "demo-prefix", "KNETRECON_CKOSIM_DEMO_PREFIX", "DEMO-", "start of each demo payment's reference, followed by its number (0001…)")
	b.Duration(&c.DemoInterval, "demo-interval", "KNETRECON_CKOSIM_DEMO_INTERVAL", 300*time.Millisecond, "pause between demo steps")
	b.Duration(&c.ShutdownTimeout, "shutdown-timeout", "KNETRECON_CKOSIM_SHUTDOWN_TIMEOUT", 5*time.Second, "how long shutdown waits for in-flight requests")
	b.String(&c.LogLevel, "log-level", "KNETRECON_LOG_LEVEL", "info", "debug, info, warn or error")
	b.Bool(&c.LogDevelopment, "log-dev", "KNETRECON_LOG_DEV", false, "human-readable console logs instead of JSON")
	if err := fs.Parse(args); err != nil {
		return c, config.UsageHint("ckosim", err)
	}
	if err := b.Finish(); err != nil {
		return c, err
	}
	var errs []error
	for _, r := range rates {
		v, err := strconv.ParseFloat(r.text, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a number", r.env, r.text))
			continue
		}
		*r.dst = v
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	c.Faults.MaxDelay = ckosim.Duration(maxDelay)
	c.Faults.RetryAfter = ckosim.Duration(retryAfter)
	c.Faults.Latency = ckosim.Duration(latency)
	return c, c.Validate()
}

// Validate checks the configuration; each message names the variable to fix.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("KNETRECON_CKOSIM_ADDR %q is not host:port", c.Addr))
	}
	for env, v := range map[string]string{"KNETRECON_CKOSIM_PUBLIC_URL": c.PublicURL, "KNETRECON_CKOSIM_WEBHOOK_URL": c.WebhookURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q is not an http(s) URL", env, v))
		}
	}
	switch ckosim.AuthMode(c.Auth) {
	case ckosim.AuthBearer, ckosim.AuthBare, ckosim.AuthEither:
	default:
		errs = append(errs, fmt.Errorf("KNETRECON_CKOSIM_AUTH %q: want bearer, bare or either", c.Auth))
	}
	if c.WebhookURL != "" && c.WebhookKey == "" {
		errs = append(errs, errors.New("KNETRECON_CKOSIM_WEBHOOK_KEY (or _FILE) is required with KNETRECON_CKOSIM_WEBHOOK_URL: the receiver refuses unsigned webhooks"))
	}
	if c.Expiry <= 0 {
		errs = append(errs, fmt.Errorf("KNETRECON_CKOSIM_EXPIRY must be positive, got %s", c.Expiry))
	}
	if c.TimeScale <= 0 {
		errs = append(errs, fmt.Errorf("KNETRECON_CKOSIM_TIME_SCALE must be above 0, got %g", c.TimeScale))
	}
	for env, v := range map[string]float64{
		"KNETRECON_CKOSIM_DROP_RATE": c.Faults.DropRate, "KNETRECON_CKOSIM_DUPLICATE_RATE": c.Faults.DuplicateRate,
		"KNETRECON_CKOSIM_DELAY_RATE": c.Faults.DelayRate, "KNETRECON_CKOSIM_API_5XX_RATE": c.Faults.API5xxRate,
		"KNETRECON_CKOSIM_API_429_RATE": c.Faults.API429Rate,
	} {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s must be between 0 and 1, got %g", env, v))
		}
	}
	for env, d := range map[string]time.Duration{
		"KNETRECON_CKOSIM_DELIVERY_TIMEOUT": c.DeliveryTimeout, "KNETRECON_CKOSIM_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", env, d))
		}
	}
	if c.Demo < 0 {
		errs = append(errs, fmt.Errorf("KNETRECON_CKOSIM_DEMO must not be negative, got %d", c.Demo))
	}
	if c.DemoInterval < 0 {
		errs = append(errs, fmt.Errorf("KNETRECON_CKOSIM_DEMO_INTERVAL must not be negative, got %s", c.DemoInterval))
	}
	return errors.Join(errs...)
}
