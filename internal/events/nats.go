package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"knetrecon/internal/config"
)

// ConnConfig says how to reach NATS. Production NATS is secured: credentials, an NKey seed or a
// token, and a private CA are all supported. None of the secret values is ever logged.
type ConnConfig struct {
	// URL is one or more comma-separated NATS server URLs.
	URL string
	// Name identifies this client in NATS monitoring.
	Name string
	// CredsFile is a NATS credentials file (JWT and seed).
	CredsFile string
	// NKeySeedFile is a file holding an NKey seed.
	NKeySeedFile string
	// Token is an authentication token.
	Token string
	// User and Password authenticate as one of the bus's users (see RoleReceiver and the others).
	User, Password string
	// TLSCAFile is a PEM file of CAs to trust for the server's certificate.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a client certificate for mutual TLS.
	TLSCertFile, TLSKeyFile string
	// InProcess, when set, connects to an embedded server in the same process without TCP.
	InProcess nats.InProcessConnProvider
	// OnDisconnect and OnReconnect, when set, are told of connection changes (for logs).
	OnDisconnect func(error)
	OnReconnect  func(url string)
}

// BindSecurity binds the settings that secure a NATS connection (credentials, NKey, token, TLS)
// to their flags and KNETRECON_NATS_… variables: every command that talks to NATS takes them alike.
func (c *ConnConfig) BindSecurity(b *config.Binder) {
	b.String(&c.CredsFile, "nats-creds", "KNETRECON_NATS_CREDS", "", "NATS credentials file")
	b.String(&c.NKeySeedFile, "nats-nkey-seed-file", "KNETRECON_NATS_NKEY_SEED_FILE", "", "file holding an NKey seed")
	b.Secret(&c.Token, "nats-token", "KNETRECON_NATS_TOKEN", "NATS authentication token")
	b.String(&c.User, "nats-user", "KNETRECON_NATS_USER", "", "NATS user name (receiver; a reconciler's is its durable consumer's name)")
	b.Secret(&c.Password, "nats-password", "KNETRECON_NATS_PASSWORD", "NATS user's password")
	b.String(&c.TLSCAFile, "nats-tls-ca", "KNETRECON_NATS_TLS_CA", "", "PEM CA file to trust for NATS TLS")
	b.String(&c.TLSCertFile, "nats-tls-cert", "KNETRECON_NATS_TLS_CERT", "", "client certificate for NATS mutual TLS")
	b.String(&c.TLSKeyFile, "nats-tls-key", "KNETRECON_NATS_TLS_KEY", "", "client key for NATS mutual TLS")
}

// Drain drains nc (subscriptions finish, publishes flush) and waits for it to close, or closes it
// when ctx ends first.
func Drain(ctx context.Context, nc *nats.Conn) {
	if nc == nil {
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		nc.Close()
	}
}

// Connect dials NATS with endless reconnects: a NATS restart must never need a knetrecon restart.
func Connect(cfg ConnConfig) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(2 * time.Second),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(2),
		// Keep publishes made while disconnected out of a buffer: the receiver must see the failure
		// and answer 503 rather than believe a message buffered in memory is stored.
		nats.ReconnectBufSize(-1),
	}
	if cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(cfg.InProcess))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("read NKey seed file %s: %w", cfg.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	if cfg.OnDisconnect != nil {
		opts = append(opts, nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { cfg.OnDisconnect(err) }))
	}
	if cfg.OnReconnect != nil {
		opts = append(opts, nats.ReconnectHandler(func(nc *nats.Conn) { cfg.OnReconnect(nc.ConnectedUrlRedacted()) }))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(cfg.URL), err)
	}
	return nc, nil
}

// ErrNotConnected means NATS could not be reached within the wait.
var ErrNotConnected = errors.New("NATS not reachable")

// WaitConnected waits up to d for nc (which retries in the background) to be connected: a
// one-shot command says plainly that NATS is unreachable instead of failing later with a client
// buffer error.
func WaitConnected(ctx context.Context, nc *nats.Conn, d time.Duration) error {
	deadline := time.Now().Add(d)
	for !nc.IsConnected() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w after %s", ErrNotConnected, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// redactURL hides any user:password in a NATS URL list before it reaches a log or an error.
func redactURL(u string) string {
	out := []byte(u)
	// Drop everything between "://" and "@" in each URL.
	for i := 0; i+3 <= len(out); i++ {
		if string(out[i:i+3]) != "://" {
			continue
		}
		j := i + 3
		for k := j; k < len(out) && out[k] != ',' && out[k] != '/'; k++ {
			if out[k] == '@' {
				out = append(out[:j], append([]byte("[REDACTED]"), out[k:]...)...)
				break
			}
		}
	}
	return string(out)
}

// EmbeddedConfig configures the in-process nats-server used when no external NATS is set.
type EmbeddedConfig struct {
	// Listen is host:port for clients; a reconciler on the same machine connects here.
	// Port 0 or -1 picks a free port (tests).
	Listen string
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// SyncAlways makes JetStream fsync every write before acknowledging it, so that a 2xx also
	// survives a power cut, not only a process crash. Off by default, as in nats-server (which
	// syncs every two minutes); it costs throughput.
	SyncAlways bool
	// Token, when set, is required from every client (see EmbeddedToken); Credentials, when
	// set, replace it: each role's user with its own permissions, the token as the operator's.
	Token       string
	Credentials *EmbeddedCredentials
}

// EmbeddedCredentials are the embedded server's client secrets, one per role, generated in the
// data directory on first start (owner-only files): the operator's token (nats.token, accepted
// as a bare token or as user operator's password), the receiver's, the keeper's and the
// reconcilers' passwords.
type EmbeddedCredentials struct {
	Operator, Receiver, Keeper, Reconciler string
}

// The files, in the data directory, of the embedded server's role passwords.
const (
	EmbeddedReceiverFile   = "nats-receiver.password"
	EmbeddedKeeperFile     = "nats-keeper.password"
	EmbeddedReconcilerFile = "nats-reconciler.password"
)

// LoadEmbeddedCredentials returns the embedded server's credentials from dataDir, generating
// the missing ones.
func LoadEmbeddedCredentials(dataDir string) (EmbeddedCredentials, error) {
	var c EmbeddedCredentials
	var err error
	if c.Operator, err = EmbeddedToken(dataDir); err != nil {
		return c, err
	}
	for p, name := range map[*string]string{&c.Receiver: EmbeddedReceiverFile, &c.Keeper: EmbeddedKeeperFile, &c.Reconciler: EmbeddedReconcilerFile} {
		if *p, err = secretFile(dataDir, name); err != nil {
			return c, err
		}
	}
	return c, nil
}

// ReadEmbeddedPassword returns the password in dataDir's file name (EmbeddedReconcilerFile, …),
// or "" when there is none.
func ReadEmbeddedPassword(dataDir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read embedded NATS password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// EmbeddedTokenFile is the file, in the data directory, that holds the embedded server's token.
const EmbeddedTokenFile = "nats.token"

// EmbeddedToken returns the embedded server's client token from dataDir, generating it on first
// use (32 random bytes, hex, in a file readable by its owner only). A receiver and a reconciler
// given the same data directory on one machine so share it with no further setting.
func EmbeddedToken(dataDir string) (string, error) {
	return secretFile(dataDir, EmbeddedTokenFile)
}

// secretFile returns the secret in dataDir's file name, generating it on first use (32 random
// bytes, hex, mode 0600 whatever the umask).
func secretFile(dataDir, name string) (string, error) {
	path := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
		return "", fmt.Errorf("embedded NATS secret file %s is empty", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read embedded NATS secret %s: %w", name, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil { // the service user's alone, whatever the umask
		return "", fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return secretFile(dataDir, name) // another process made it first
	}
	if err != nil {
		return "", fmt.Errorf("create embedded NATS secret %s: %w", name, err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write embedded NATS secret %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("write embedded NATS secret %s: %w", name, err)
	}
	return tok, f.Close()
}

// ReadEmbeddedToken returns the token in dataDir, or "" when there is none (no embedded server
// there, or an external NATS).
func ReadEmbeddedToken(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, EmbeddedTokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read embedded NATS token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ErrEmbeddedNotReady means the embedded server did not accept connections in time.
var ErrEmbeddedNotReady = errors.New("embedded nats-server not ready")

// RunEmbedded starts an in-process nats-server with JetStream and waits until it accepts
// connections. The caller owns it: Shutdown then WaitForShutdown, after every client is closed.
func RunEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	opts, err := embeddedOptions(cfg)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w at %s (is the port taken?)", ErrEmbeddedNotReady, cfg.Listen)
	}
	return ns, nil
}

// RestartJetStream restarts JetStream inside the embedded server ns started from cfg, the way
// nats-server re-enables it on a configuration reload: the streams and consumers are loaded
// again from disk, and a write error the store kept (a full disk) is forgotten. Client
// connections stay up; JetStream requests fail for the few milliseconds it takes.
func RestartJetStream(ns *server.Server, cfg EmbeddedConfig) error {
	opts, err := embeddedOptions(cfg)
	if err != nil {
		return err
	}
	if err := ns.ShutdownJetStream(); err != nil {
		return fmt.Errorf("stop JetStream: %w", err)
	}
	if err := ns.ReloadOptions(opts); err != nil {
		return fmt.Errorf("start JetStream again: %w", err)
	}
	if !ns.JetStreamEnabled() {
		return errors.New("start JetStream again: still disabled (see the store's file system)")
	}
	return nil
}

// embeddedOptions are the embedded server's options for cfg.
func embeddedOptions(cfg EmbeddedConfig) (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("KNETRECON_NATS_LISTEN %q is not host:port: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("KNETRECON_NATS_LISTEN %q has no numeric port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "127.0.0.1"
	}
	storeDir, err := filepath.Abs(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("jetstream store dir: %w", err)
	}
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, fmt.Errorf("create jetstream store dir: %w", err)
	}
	opts := &server.Options{
		ServerName:    "knetrecon-embedded",
		Host:          host,
		Port:          port,
		JetStream:     true,
		StoreDir:      storeDir,
		NoSigs:        true,
		NoLog:         true,
		SyncAlways:    cfg.SyncAlways,
		MaxPayload:    8 << 20,
		Authorization: cfg.Token,
	}
	if cfg.Credentials != nil {
		opts.Authorization = ""
		opts.CustomClientAuthentication = embeddedAuth{creds: *cfg.Credentials}
	}
	return opts, nil
}
