// Command receiver takes in Checkout.com webhooks, verifies them, and stores them in NATS
// JetStream before answering 2xx. See docs/operations.md for its configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/service"
	"knetrecon/internal/webhook"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:], os.Getenv))
	}
	if service.VersionRequested(os.Args[1:]) {
		fmt.Println("receiver", service.BuildOf())
		return
	}
	cfg, err := ParseConfig(os.Args[1:], os.Getenv)
	os.Exit(service.Main(service.Config{Name: "receiver", Err: err, LogLevel: cfg.LogLevel, LogDevelopment: cfg.LogDevelopment},
		func(log *zap.Logger) service.Process { return NewMain(cfg, log) }))
}

// Main is the receiver process: embedded or external NATS, the stream, the HTTP servers. Tests
// boot it with a temporary data dir and :0 ports.
type Main struct {
	Config Config
	Log    *zap.Logger
	// Registry holds the process's metrics.
	Registry *prometheus.Registry

	ns       *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	servers  []*http.Server
	addr     net.Addr
	metrics  net.Addr
	wg       sync.WaitGroup
	serveErr chan error

	handler   *webhook.Handler
	hooks     *webhook.Metrics
	guard     *events.Guard
	circuit   *events.StoreCircuit
	gsync     *events.GroupSync
	stopGuard context.CancelFunc
	stopMeta  context.CancelFunc
	// durable is what a 2xx means on this NATS (checkDurability).
	durable events.Durability
	// keeper is the connection Room purges through (nil: the main one).
	keeper *nats.Conn
}

// NewMain returns a receiver for cfg logging to log.
func NewMain(cfg Config, log *zap.Logger) *Main {
	return &Main{Config: cfg, Log: log, Registry: prometheus.NewRegistry(), serveErr: make(chan error, 2)}
}

// Run starts NATS (or connects to it), ensures the stream and starts serving. It returns once
// the receiver accepts webhooks; Close stops it.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	ring, err := checkout.NewKeyRing(checkout.ParseKeys(cfg.WebhookKeys)...)
	if err != nil {
		return fmt.Errorf("KNETRECON_WEBHOOK_KEYS: %w", err)
	}
	// What a 2xx means on this NATS, decided before any webhook is taken in.
	if m.durable, err = m.checkDurability(ctx); err != nil {
		return err
	}

	conn := cfg.NATS
	var embedded events.EmbeddedConfig
	if conn.URL == "" {
		// The embedded server requires a token, generated on first start into the data directory
		// (owner-only): no other local process publishes on the bus without it.
		creds, err := events.LoadEmbeddedCredentials(cfg.DataDir)
		if err != nil {
			return err
		}
		embedded = events.EmbeddedConfig{Listen: cfg.NATSListen, StoreDir: cfg.natsStoreDir(), SyncAlways: cfg.NATSSyncAlways, Credentials: &creds}
		m.ns, err = events.RunEmbedded(embedded)
		if err != nil {
			return err
		}
		conn.URL = m.ns.ClientURL()
		conn.InProcess = m.ns
		conn.User, conn.Password = events.RoleReceiver, creds.Receiver
		m.Config.Keeper = events.ConnConfig{User: events.RoleKeeper, Password: creds.Keeper}
		m.Log.Info("embedded nats-server started", zap.String("listen", m.ns.ClientURL()), zap.String("store_dir", cfg.natsStoreDir()))
	}
	conn.OnDisconnect = func(err error) { m.Log.Warn("NATS disconnected", zap.Error(err)) }
	conn.OnReconnect = func(url string) { m.Log.Info("NATS reconnected", zap.String("url", url)) }
	if m.nc, err = events.Connect(conn); err != nil {
		return err
	}
	if m.js, err = jetstream.New(m.nc, events.PublishOptions(2*cfg.PublishTimeout)...); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if m.ns != nil {
		if _, err := m.js.Stream(ctx, events.StreamName); errors.Is(err, jetstream.ErrStreamNotFound) && events.StreamFilesWithoutDefinition(cfg.natsStoreDir()) {
			// Its message blocks survived and its definition did not (written without an fsync
			// before this release): the stream is made again from the configuration over them.
			m.Log.Error("the stream's definition was lost (a power cut?) while its message files survived: creating it again from the configuration over them",
				zap.String("stream", events.StreamName), zap.String("store_dir", cfg.natsStoreDir()))
		}
	}
	if err := m.ensureStream(ctx); err != nil {
		return err
	}
	if m.ns != nil {
		if err := m.startMetaSync(ctx); err != nil {
			return err
		}
	}
	// A body NATS cannot carry would be refused with 503 on every retry: refuse the setting instead.
	if max := m.nc.MaxPayload(); max > 0 && cfg.MaxBodyBytes+maxHeaderBytes > max {
		return fmt.Errorf("KNETRECON_MAX_BODY_BYTES (%d) plus %d bytes of headers exceeds the NATS server's max_payload (%d): lower it or raise max_payload",
			cfg.MaxBodyBytes, maxHeaderBytes, max)
	}

	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	service.RegisterBuildInfo(m.Registry, "receiver")
	m.hooks = webhook.NewMetrics(m.Registry)
	publisher, err := m.publisher(conn)
	if err != nil {
		return err
	}
	m.guard = events.NewGuard(publisher.Room(), events.GuardConfig{Limit: float64(cfg.BacklogLimit) / 100, Every: cfg.BacklogCheck,
		OnError: func(err error) {
			if errors.Is(err, events.ErrDiscardOld) {
				m.Log.Error("stream configuration lets unapplied messages be discarded", zap.Error(err))
				return
			}
			m.Log.Warn("stream backlog not read", zap.Error(err))
		},
		OnLost: func(l events.LostRange) {
			m.Log.Error("the stream removed messages a ledger had not applied: they are lost to it",
				zap.String("consumer", l.Consumer), zap.Uint64("ack_floor", l.Floor), zap.Uint64("stream_first_seq", l.FirstSeq),
				zap.Uint64("lost_messages", l.Msgs()), zap.String("runbook", "docs/operations.md#stream-lost-unapplied"))
		}}, m.Registry)
	if _, err := m.guard.Refresh(ctx); err != nil {
		return fmt.Errorf("read the stream's backlog: %w", err)
	}
	guardCtx, stopGuard := context.WithCancel(context.WithoutCancel(ctx))
	m.stopGuard = stopGuard
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.guard.Run(guardCtx)
	}()
	if m.ns != nil && cfg.Durable && !cfg.NATSSyncAlways {
		dir, err := events.StreamMsgsDir(cfg.natsStoreDir())
		if err != nil {
			return fmt.Errorf("KNETRECON_DURABLE: %w", err)
		}
		if m.gsync, err = events.NewGroupSync(dir); err != nil {
			return fmt.Errorf("KNETRECON_DURABLE: %w", err)
		}
	}
	var syncFn func(context.Context) error
	if m.gsync != nil {
		syncFn = m.gsync.Sync
	}
	m.circuit = m.storeCircuit(embedded)
	m.handler = webhook.New(webhook.Config{
		Keys:           ring,
		Authorization:  cfg.Authorization,
		Publisher:      publisher,
		Admit:          m.guard.Admit,
		Store:          m.circuit,
		Sync:           syncFn,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		PublishTimeout: cfg.PublishTimeout,
		RetryAfter:     cfg.RetryAfter,
		Log:            m.Log.Named("webhook"),
		Metrics:        m.hooks,
	})
	metricsHandler := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.circuit.Run(guardCtx)
	}()

	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		service.WatchReload(guardCtx, []string{cfg.WebhookKeysFile, cfg.AuthorizationFile}, KeyCheckEvery,
			func(reason string) { _ = m.ReloadKeys(reason) })
	}()

	mux := http.NewServeMux()
	mux.Handle(cfg.WebhookPath, m.handler)
	mux.HandleFunc("GET /healthz", m.healthy)
	mux.HandleFunc("GET /readyz", m.ready)
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", metricsHandler)
		if cfg.PProf {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		}
	} else {
		admin := http.NewServeMux()
		admin.Handle("GET /metrics", metricsHandler)
		if cfg.PProf {
			admin.HandleFunc("/debug/pprof/", pprof.Index)
			admin.HandleFunc("/debug/pprof/profile", pprof.Profile)
		}
		admin.HandleFunc("GET /healthz", m.healthy)
		admin.HandleFunc("GET /readyz", m.ready)
		if m.metrics, err = m.serve(cfg.MetricsAddr, admin); err != nil {
			return err
		}
	}
	if m.addr, err = m.serve(cfg.Addr, mux); err != nil {
		return err
	}
	m.Log.Info("receiver started", zap.String("addr", m.addr.String()), zap.String("path", cfg.WebhookPath),
		zap.Int("webhook_keys", ring.Len()), zap.Bool("authorization_check", cfg.Authorization != ""), zap.Bool("embedded_nats", m.ns != nil),
		zap.Bool("durable", m.gsync != nil || (m.ns != nil && cfg.NATSSyncAlways)))
	return nil
}

// maxHeaderBytes is room for a stream message's headers beside its body.
const maxHeaderBytes = 4096

// StoreCheckEvery is how often the store circuit looks at the embedded server's store (and, with
// an external NATS, at the account's storage while the circuit is open).
var StoreCheckEvery = 500 * time.Millisecond

// storeCircuit builds the circuit that refuses webhooks at once while the NATS store refuses
// writes. With the embedded server it looks at the store itself (its write error, its disk's
// free space) and restarts JetStream in this process once the space is back: a full disk needs
// no restart of the receiver. With an external NATS it opens on the store errors publishes get.
func (m *Main) storeCircuit(embedded events.EmbeddedConfig) *events.StoreCircuit {
	cfg := events.StoreCircuitConfig{Every: StoreCheckEvery, Hold: 4 * StoreCheckEvery, Probe: events.AccountStoreProbe(m.js),
		OnChange: func(failing bool, reason string, lasted time.Duration) {
			if failing {
				m.Log.Error("NATS store refuses writes: webhooks are answered 503 at once and /readyz is 503 until it takes them again",
					zap.String("reason", reason))
				return
			}
			m.handler.StoreRecovered()
			m.Log.Info("NATS store takes writes again: intake resumed", zap.Duration("refused_for", lasted), zap.String("reason_was", reason))
		}}
	if m.ns != nil {
		store := &events.EmbeddedStore{Server: m.ns, Config: embedded,
			MinFree: max(4<<20, 2*(m.Config.MaxBodyBytes+maxHeaderBytes)),
			OnRestart: func(cause string) {
				if m.gsync != nil {
					m.gsync.Forget()
				}
				m.Log.Warn("JetStream restarted inside the receiver: the store had room again, and nats-server keeps a write error until then",
					zap.String("cause", cause))
			}}
		cfg.Probe, cfg.Watch = store.Probe, true
	}
	return events.NewStoreCircuit(cfg, m.Registry)
}

// MetaSyncEvery is how often the embedded server's stream and consumer definitions are looked at
// and fsynced when they changed (a reconciler creating its consumer).
var MetaSyncEvery = time.Second

// startMetaSync fsyncs the embedded server's definitions now (the stream's, before the first
// webhook is taken in) and then every MetaSyncEvery.
func (m *Main) startMetaSync(ctx context.Context) error {
	ms := events.NewMetaSync(m.Config.natsStoreDir())
	if _, err := ms.Sync(); err != nil {
		return fmt.Errorf("fsync the stream's definition: %w", err)
	}
	syncCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopMeta = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(MetaSyncEvery)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-syncCtx.Done():
				return
			case <-t.C:
			}
			n, err := ms.Sync()
			switch {
			case err != nil && !failing:
				m.Log.Error("stream or consumer definitions not synced", zap.Error(err))
			case err == nil && n > 0:
				m.Log.Debug("stream or consumer definitions synced", zap.Int("files", n))
			}
			failing = err != nil
		}
	}()
	return nil
}

// ensureStream creates or updates the stream, retrying until StartTimeout: an external NATS may
// still be starting when the receiver does.
func (m *Main) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.Config.StartTimeout)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		_, err := events.EnsureStream(attempt, m.js, m.Config.Stream)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if errors.Is(err, events.ErrStreamNotUpdated) {
			m.Log.Warn("the stream is used as it is: apply the change with the operator's NATS credential", zap.Error(err))
			return nil
		}
		m.Log.Warn("stream not ready, retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s not ready within %s: %w", events.StreamName, m.Config.StartTimeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (m *Main) serve(addr string, h http.Handler) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: m.Config.ReadHeaderTimeout,
		ReadTimeout:       m.Config.ReadTimeout,
		WriteTimeout:      m.Config.WriteTimeout,
		IdleTimeout:       m.Config.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(m.Log.Named("http")),
	}
	m.servers = append(m.servers, srv)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server stopped", zap.String("addr", addr), zap.Error(err))
			m.serveErr <- err
		}
	}()
	return ln.Addr(), nil
}

// KeyCheckEvery is how often the key files are looked at for a change (SIGHUP reloads at once).
var KeyCheckEvery = 5 * time.Second

// ReloadKeys reads the webhook keys (and the Authorization value) again from their files and
// puts them in use for the next request. Keys that cannot be read, or an empty list, are refused:
// the keys in use are kept, and the error is logged and counted. Keys given directly in the
// environment cannot change: nothing to reload.
func (m *Main) ReloadKeys(reason string) error {
	cfg := m.Config
	keys, auth := cfg.WebhookKeys, cfg.Authorization
	read := service.ReadSecretFile
	var err error
	if cfg.WebhookKeysFile != "" {
		if keys, err = read(cfg.WebhookKeysFile); err != nil {
			err = fmt.Errorf("KNETRECON_WEBHOOK_KEYS_FILE: %w", err)
		}
	}
	if err == nil && cfg.AuthorizationFile != "" {
		if auth, err = read(cfg.AuthorizationFile); err != nil {
			err = fmt.Errorf("KNETRECON_WEBHOOK_AUTHORIZATION_FILE: %w", err)
		}
	}
	var ring *checkout.KeyRing
	if err == nil {
		if ring, err = checkout.NewKeyRing(checkout.ParseKeys(keys)...); err != nil {
			err = fmt.Errorf("KNETRECON_WEBHOOK_KEYS_FILE: %w", err)
		}
	}
	if err != nil {
		m.hooks.Reloaded(false)
		m.Log.Error("webhook keys not reloaded; the keys in use are kept", zap.String("reason", reason), zap.Error(err))
		return err
	}
	if cfg.WebhookKeysFile == "" && cfg.AuthorizationFile == "" {
		m.Log.Info("webhook keys come from the environment, not a file: nothing to reload", zap.String("reason", reason))
		return nil
	}
	m.handler.SetKeys(ring, auth)
	m.hooks.Reloaded(true)
	m.Log.Info("webhook keys reloaded", zap.String("reason", reason), zap.Strings("keys", ring.Fingerprints()),
		zap.Bool("authorization_check", auth != ""))
	return nil
}

// healthy answers 200 while the process can take webhooks in, and 503 when it cannot recover by
// itself: the NATS connection closed for good, or every publish failing for
// KNETRECON_INTAKE_BROKEN_AFTER. A liveness probe on it restarts a receiver whose intake broke.
// While the NATS store refuses writes it stays 200: a restart would meet the same store, and the
// store circuit resumes intake by itself (/readyz is 503 meanwhile).
func (m *Main) healthy(w http.ResponseWriter, _ *http.Request) {
	if m.nc.IsClosed() {
		http.Error(w, "NATS connection closed for good", http.StatusServiceUnavailable)
		return
	}
	if failing, reason := m.circuit.Failing(); failing {
		// A restart would meet the same store: /readyz says not ready, the alert says why.
		_, _ = w.Write([]byte("ok (not ready: NATS store refuses writes: " + reason + ")\n"))
		return
	}
	if d := m.handler.FailingFor(time.Now()); d > m.Config.IntakeBrokenAfter {
		http.Error(w, fmt.Sprintf("every publish has failed for %s", d.Round(time.Second)), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// ready answers 200 when NATS is connected, its store takes writes and the stream answers, 503
// otherwise.
func (m *Main) ready(w http.ResponseWriter, r *http.Request) {
	if !m.nc.IsConnected() {
		http.Error(w, "NATS not connected", http.StatusServiceUnavailable)
		return
	}
	if failing, reason := m.circuit.Failing(); failing {
		http.Error(w, "NATS store refuses writes: "+reason, http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s, err := m.js.Stream(ctx, events.StreamName)
	if err == nil {
		_, err = s.Info(ctx)
	}
	if err != nil {
		http.Error(w, "stream "+events.StreamName+" not reachable", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Addr is the address webhooks are served on (useful with :0).
func (m *Main) Addr() string { return m.addr.String() }

// MetricsAddr is the separate admin address, or "" when metrics share the webhook address.
func (m *Main) MetricsAddr() string {
	if m.metrics == nil {
		return ""
	}
	return m.metrics.String()
}

// NATSURL is the URL of the NATS the receiver publishes to (the embedded server's, by default).
func (m *Main) NATSURL() string {
	if m.ns != nil {
		return m.ns.ClientURL()
	}
	return m.Config.NATS.URL
}

// Close stops intake, lets in-flight publishes finish (bounded by ShutdownTimeout), drains NATS
// and stops the embedded server last. It returns the first error met.
func (m *Main) Close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	for _, srv := range m.servers {
		keep(srv.Shutdown(ctx))
	}
	if m.stopGuard != nil {
		m.stopGuard()
	}
	if m.stopMeta != nil {
		m.stopMeta()
	}
	m.wg.Wait()
	if m.gsync != nil {
		keep(m.gsync.Close())
	}
	events.Drain(ctx, m.nc)
	events.Drain(ctx, m.keeper)
	if m.ns != nil {
		m.ns.Shutdown()
		m.ns.WaitForShutdown()
	}
	return first
}
