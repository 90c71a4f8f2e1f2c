// Command ckosim runs the local Checkout.com KNET simulator: the payments API, a KNET page a
// person can use in a browser, signed webhooks to the receiver and the /_sim/ control API. With
// --demo N it also creates N payments and drives them through a realistic mix of outcomes. See
// docs/ckosim.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"knetrecon/internal/checkout/ckosim"
	"knetrecon/internal/service"
)

func main() {
	if service.VersionRequested(os.Args[1:]) {
		fmt.Println("ckosim", service.BuildOf())
		return
	}
	cfg, err := ParseConfig(os.Args[1:], os.Getenv)
	os.Exit(service.Main(service.Config{Name: "ckosim", Err: err, LogLevel: cfg.LogLevel, LogDevelopment: cfg.LogDevelopment},
		func(log *zap.Logger) service.Process { return NewMain(cfg, log) }))
}

// Main is the simulator process: the Sim, its HTTP server and the optional demo driver. Tests
// boot it with a :0 address.
type Main struct {
	Config Config
	Log    *zap.Logger
	// Sim is the running simulator, set by Run.
	Sim *ckosim.Sim

	srv      *http.Server
	addr     net.Addr
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	demoDone chan struct{}
}

// NewMain returns a simulator process for cfg logging to log.
func NewMain(cfg Config, log *zap.Logger) *Main {
	ctx, cancel := context.WithCancel(context.Background())
	return &Main{Config: cfg, Log: log.Named("ckosim"), ctx: ctx, cancel: cancel, demoDone: make(chan struct{})}
}

// Run listens, starts the simulator and, with --demo, the demo driver. It returns once serving;
// Close stops everything.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (KNETRECON_CKOSIM_ADDR): %w", cfg.Addr, err)
	}
	m.addr = ln.Addr()
	public := cfg.PublicURL
	if public == "" {
		public = "http://" + dialable(m.addr)
	}
	m.Sim = ckosim.New(ckosim.Config{
		SecretKey:            cfg.SecretKey,
		Auth:                 ckosim.AuthMode(cfg.Auth),
		PublicURL:            public,
		WebhookURL:           cfg.WebhookURL,
		WebhookKey:           cfg.WebhookKey,
		WebhookAuthorization: cfg.WebhookAuthorization,
		Expiry:               cfg.Expiry,
		TimeScale:            cfg.TimeScale,
		DeliveryTimeout:      cfg.DeliveryTimeout,
		Seed:                 uint64(cfg.Seed),
		Faults:               cfg.Faults,
	})
	m.srv = &http.Server{
		Handler:           m.Sim.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          zap.NewStdLog(m.Log.Named("http")),
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server stopped", zap.Error(err))
		}
	}()
	m.Log.Info("ckosim serving",
		zap.String("url", public),
		zap.String("webhook_url", cfg.WebhookURL),
		zap.Bool("api_key_required", cfg.SecretKey != ""),
		zap.String("auth", cfg.Auth),
		zap.Duration("expiry", cfg.Expiry),
		zap.Float64("time_scale", cfg.TimeScale),
		zap.Int64("seed", cfg.Seed),
		zap.Any("faults", cfg.Faults))
	if cfg.Demo > 0 {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer close(m.demoDone)
			m.demo(m.ctx)
		}()
	} else {
		close(m.demoDone)
	}
	return nil
}

// dialable turns a listener address into host:port a browser can reach.
func dialable(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

// Addr is the address served (useful with :0).
func (m *Main) Addr() string { return m.addr.String() }

// URL is the simulator's base URL: KNETRECON_CHECKOUT_URL for the reconciler.
func (m *Main) URL() string { return "http://" + dialable(m.addr) }

// DemoDone is closed once the demo has driven every payment (at once without --demo).
func (m *Main) DemoDone() <-chan struct{} { return m.demoDone }

// Close stops the demo, the HTTP server (bounded by ShutdownTimeout) and webhook delivery, in
// that order, and returns the first error.
func (m *Main) Close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	m.cancel()
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		defer cancel()
		keep(m.srv.Shutdown(ctx))
	}
	m.wg.Wait()
	if m.Sim != nil {
		keep(m.Sim.Close())
	}
	return first
}
