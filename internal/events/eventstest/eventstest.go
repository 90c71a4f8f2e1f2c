// Package eventstest starts real, embedded NATS JetStream servers for tests.
package eventstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
)

// MustRunNATS starts an embedded nats-server with JetStream on a free loopback port and a
// temporary store, and shuts it down when the test ends.
func MustRunNATS(tb testing.TB) *server.Server {
	tb.Helper()
	return MustRunNATSAt(tb, "127.0.0.1:0", tb.TempDir())
}

// MustRunNATSAt starts an embedded server on listen with its store in dir: restarting a server
// on the same port and dir brings the same stream back, as after a NATS outage.
func MustRunNATSAt(tb testing.TB, listen, dir string) *server.Server {
	tb.Helper()
	ns, err := events.RunEmbedded(events.EmbeddedConfig{Listen: listen, StoreDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// MustConnect connects to ns and returns the connection and its JetStream context; the
// connection is closed when the test ends.
func MustConnect(tb testing.TB, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	return MustConnectToken(tb, ns, "")
}

// MustConnectToken is MustConnect with a client token (an embedded server that requires one).
func MustConnectToken(tb testing.TB, ns *server.Server, token string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := events.Connect(events.ConnConfig{URL: ns.ClientURL(), Name: tb.Name(), Token: token})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// MustEnsureStream creates the CHECKOUT_EVENTS stream with default settings.
func MustEnsureStream(tb testing.TB, js jetstream.JetStream) jetstream.Stream {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
