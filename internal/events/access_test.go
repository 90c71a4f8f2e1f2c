package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
)

// shippedPasswords sets the passwords deploy/nats/*.conf read from the environment.
func shippedPasswords(t *testing.T) map[string]string {
	pw := map[string]string{"receiver": "pw-receiver", "keeper": "pw-keeper", "reconciler": "pw-reconciler",
		"reconciler-a": "pw-a", "reconciler-b": "pw-b", "operator": "pw-operator"}
	for env, user := range map[string]string{"KNETRECON_NATS_RECEIVER_PASSWORD": "receiver", "KNETRECON_NATS_KEEPER_PASSWORD": "keeper",
		"KNETRECON_NATS_RECONCILER_PASSWORD": "reconciler", "KNETRECON_NATS_RECONCILER_A_PASSWORD": "reconciler-a",
		"KNETRECON_NATS_RECONCILER_B_PASSWORD": "reconciler-b", "KNETRECON_NATS_OPERATOR_PASSWORD": "operator"} {
		t.Setenv(env, pw[user])
	}
	t.Setenv("NATS_SERVER_NAME", "n1")
	for i, r := range []string{"NATS_ROUTE_1", "NATS_ROUTE_2", "NATS_ROUTE_3"} {
		t.Setenv(r, fmt.Sprintf("nats://nats%d:6222", i+1))
	}
	return pw
}

// shipped parses deploy/nats/<name>.
func shipped(t *testing.T, name string) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", name))
	if err != nil {
		t.Fatalf("deploy/nats/%s: %v", name, err)
	}
	return opts
}

// TestShippedAuthMatchesRoles: the NATS configurations shipped in deploy/nats fsync before
// acknowledging, and grant each user exactly its role's permissions as built in access.go (the
// embedded server's).
func TestShippedAuthMatchesRoles(t *testing.T) {
	pw := shippedPasswords(t)
	for _, tt := range []struct {
		give        string
		reconcilers []string
		routes      int
	}{{"nats.conf", []string{"reconciler"}, 0}, {"cluster.conf", []string{"reconciler-a", "reconciler-b"}, 3}} {
		t.Run(tt.give, func(t *testing.T) {
			opts := shipped(t, tt.give)
			if !opts.JetStream || !opts.SyncAlways {
				t.Errorf("jetstream %v, sync_always %v: want sync_interval always", opts.JetStream, opts.SyncAlways)
			}
			if len(opts.Routes) != tt.routes {
				t.Errorf("%d routes, want %d", len(opts.Routes), tt.routes)
			}
			want := map[string]*server.Permissions{"receiver": events.ReceiverPermissions(), "keeper": events.KeeperPermissions(), "operator": nil}
			for _, r := range tt.reconcilers {
				want[r] = events.ReconcilerPermissions(r, tt.reconcilers)
			}
			if len(opts.Users) != len(want) {
				t.Fatalf("%d users, want %d", len(opts.Users), len(want))
			}
			for _, u := range opts.Users {
				w, ok := want[u.Username]
				if !ok {
					t.Errorf("user %s is no role's", u.Username)
					continue
				}
				if u.Password != pw[u.Username] {
					t.Errorf("user %s: password not read from the environment", u.Username)
				}
				if !reflect.DeepEqual(u.Permissions, w) {
					t.Errorf("user %s: permissions\n%+v\nwant (access.go)\n%+v", u.Username, u.Permissions, w)
				}
			}
		})
	}
}

// bus is a JetStream server and a way to connect to it as a user.
type bus struct {
	t    *testing.T
	url  string
	conn func(user string) (*nats.Conn, jetstream.JetStream)
}

func (b bus) as(user string) (*nats.Conn, jetstream.JetStream) { return b.conn(user) }

// refused runs f, which must fail (a refused request is dropped unanswered: f times out), and
// checks that the server refused nc's publish to subject.
func refused(t *testing.T, nc *nats.Conn, what, subject string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := f(ctx)
	_ = nc.Flush()
	if err == nil {
		t.Errorf("%s: allowed, want refused", what)
		return
	}
	if !events.Refused(nc, subject) {
		t.Errorf("%s: %v, and the server did not refuse %s (last error %v)", what, err, subject, nc.LastError())
	}
}

// allowed runs f, which must succeed.
func allowed(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Errorf("%s: %v, want allowed", what, err)
	}
}

// checkRoles is the test of every role against b, whose reconcilers are a and b2 (durable
// consumers of the same names); others reports whether a may not pull from b2's consumer.
func checkRoles(t *testing.T, b bus, a, b2 string, othersDenied bool) {
	ctx := context.Background()
	_, opJS := b.as(events.RoleOperator)
	if _, err := events.EnsureStream(ctx, opJS, events.DefaultStreamConfig()); err != nil {
		t.Fatal(err)
	}
	webhook := func(id string) *events.Webhook {
		return &events.Webhook{Body: []byte(`{"id":"` + id + `"}`), EventID: id, EventType: "payment_captured", ReceivedAt: time.Now()}
	}

	recvNC, recvJS := b.as(events.RoleReceiver)
	pub := events.NewPublisher(recvJS)
	for _, id := range []string{"evt_1", "evt_2", "evt_3"} {
		allowed(t, "receiver publishes a webhook", func(ctx context.Context) error { _, err := pub.Publish(ctx, webhook(id)); return err })
	}
	allowed(t, "receiver ensures the stream as it is", func(ctx context.Context) error {
		_, err := events.EnsureStream(ctx, recvJS, events.DefaultStreamConfig())
		return err
	})
	allowed(t, "receiver reads the backlog", func(ctx context.Context) error { _, err := events.ReadBacklog(ctx, recvJS); return err })
	allowed(t, "receiver reads the account's storage", func(ctx context.Context) error { _, err := recvJS.AccountInfo(ctx); return err })
	changed := events.DefaultStreamConfig()
	changed.MaxBytes = 1 << 20
	if _, err := events.EnsureStream(ctx, recvJS, changed); !errors.Is(err, events.ErrStreamNotUpdated) {
		t.Errorf("receiver changes the stream: %v, want ErrStreamNotUpdated", err)
	}
	stream := func(js jetstream.JetStream) jetstream.Stream {
		s, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rs := stream(recvJS)
	refused(t, recvNC, "receiver purges", "$JS.API.STREAM.PURGE."+events.StreamName, func(ctx context.Context) error { return rs.Purge(ctx) })
	refused(t, recvNC, "receiver deletes the stream", "$JS.API.STREAM.DELETE."+events.StreamName, func(ctx context.Context) error {
		return recvJS.DeleteStream(ctx, events.StreamName)
	})
	refused(t, recvNC, "receiver publishes a fact", events.FactSubject("sweep"), func(ctx context.Context) error {
		_, err := recvJS.PublishMsg(ctx, events.FactMessage("sweep", "f1", []byte("{}"), "sig", ""))
		return err
	})
	refused(t, recvNC, "receiver creates a consumer", "$JS.API.CONSUMER.CREATE."+events.StreamName+".spy", func(ctx context.Context) error {
		_, err := recvJS.CreateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{Durable: "spy", AckPolicy: jetstream.AckExplicitPolicy})
		return err
	})

	// The reconcilers: each its own durable consumer.
	aNC, aJS := b.as(a)
	_, bJS := b.as(b2)
	cfg := events.DefaultConsumerConfig()
	cfg.Durable = a
	ca, err := events.EnsureConsumer(ctx, aJS, cfg)
	if err != nil {
		t.Fatalf("%s creates its consumer: %v", a, err)
	}
	cfg.Durable = b2
	cb, err := events.EnsureConsumer(ctx, bJS, cfg)
	if err != nil {
		t.Fatalf("%s creates its consumer: %v", b2, err)
	}
	batch, err := ca.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		allowed(t, a+" acks its own message", func(ctx context.Context) error { return m.DoubleAck(ctx) })
	}
	allowed(t, a+" publishes a fact", func(ctx context.Context) error {
		_, err := events.NewPublisher(aJS).PublishMsg(ctx, events.FactMessage("sweep", "f1", []byte("{}"), "sig", ""))
		return err
	})
	allowed(t, a+" replays the stream (ordered consumer)", func(ctx context.Context) error {
		c, err := events.Replay(ctx, aJS, events.ReplayFrom{Seq: 1})
		if err != nil {
			return err
		}
		_, err = c.Next(jetstream.FetchMaxWait(2 * time.Second))
		return err
	})
	allowed(t, a+" reads the stream by sequence", func(ctx context.Context) error {
		_, err := events.FetchRange(ctx, stream(aJS), 1, 2)
		return err
	})
	allowed(t, a+" takes the sweep's lease bucket", func(ctx context.Context) error {
		_, err := events.EnsureLeases(ctx, aJS, 10*time.Second)
		return err
	})
	as := stream(aJS)
	refused(t, aNC, a+" purges", "$JS.API.STREAM.PURGE."+events.StreamName, func(ctx context.Context) error { return as.Purge(ctx) })
	refused(t, aNC, a+" deletes the stream", "$JS.API.STREAM.DELETE."+events.StreamName, func(ctx context.Context) error {
		return aJS.DeleteStream(ctx, events.StreamName)
	})
	refused(t, aNC, a+" publishes a webhook", events.Subject("payment_captured"), func(ctx context.Context) error {
		_, err := aJS.PublishMsg(ctx, webhook("evt_forged").Message())
		return err
	})
	refused(t, aNC, a+" deletes "+b2+"'s consumer", "$JS.API.CONSUMER.DELETE."+events.StreamName+"."+b2, func(ctx context.Context) error {
		return aJS.DeleteConsumer(ctx, events.StreamName, b2)
	})
	// b2 is delivered a message; a may not ack it for b2.
	bb, err := cb.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range bb.Messages() {
		refused(t, aNC, a+" acks "+b2+"'s message", m.Reply(), func(context.Context) error {
			if err := aNC.Publish(m.Reply(), []byte("+ACK")); err != nil {
				return err
			}
			_ = aNC.Flush()
			return aNC.LastError()
		})
	}
	if info, err := cb.Info(ctx); err != nil || info.AckFloor.Stream != 0 {
		t.Errorf("%s's ack floor after %s's ack: %+v %v, want 0", b2, a, info, err)
	}
	if othersDenied {
		next := "$JS.API.CONSUMER.MSG.NEXT." + events.StreamName + "." + b2
		refused(t, aNC, a+" pulls from "+b2+"'s consumer", next, func(ctx context.Context) error {
			c, err := aJS.Consumer(ctx, events.StreamName, b2)
			if err != nil {
				return err
			}
			msgs, err := c.Fetch(1, jetstream.FetchMaxWait(250*time.Millisecond))
			if err != nil {
				return err
			}
			for range msgs.Messages() {
				return nil
			}
			return errors.New("nothing delivered")
		})
	}

	// The keeper makes room: it may purge, nothing else.
	kNC, kJS := b.as(events.RoleKeeper)
	allowed(t, "keeper makes room (purges applied history)", func(ctx context.Context) error {
		_, _, err := events.NewRoom(kJS).Make(ctx, 1<<40)
		return err
	})
	refused(t, kNC, "keeper publishes a webhook", events.Subject("payment_captured"), func(ctx context.Context) error {
		_, err := kJS.PublishMsg(ctx, webhook("evt_k").Message())
		return err
	})
	refused(t, kNC, "keeper deletes the stream", "$JS.API.STREAM.DELETE."+events.StreamName, func(ctx context.Context) error {
		return kJS.DeleteStream(ctx, events.StreamName)
	})
}

// connector connects to url as a user with the password pw gives.
func connector(t *testing.T, url string, pw func(user string) string) func(string) (*nats.Conn, jetstream.JetStream) {
	return func(user string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		nc, err := nats.Connect(url, nats.UserInfo(user, pw(user)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
}

// TestRolesOnShippedCluster runs a server with deploy/nats/cluster.conf's users (one node, its
// own store) and checks each credential is refused what it must not do.
func TestRolesOnShippedCluster(t *testing.T) {
	pw := shippedPasswords(t)
	opts := shipped(t, "cluster.conf")
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir = "127.0.0.1", -1, 0, t.TempDir()
	opts.Cluster = server.ClusterOpts{}
	opts.Routes, opts.RoutesStr = nil, ""
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	checkRoles(t, bus{t: t, url: ns.ClientURL(), conn: connector(t, ns.ClientURL(), func(u string) string { return pw[u] })},
		"reconciler-a", "reconciler-b", true)
}

// TestRolesOnEmbeddedServer: the embedded server grants the same roles from the credentials it
// generated in the data directory (owner-only files); the operator's token works as before.
func TestRolesOnEmbeddedServer(t *testing.T) {
	dir := t.TempDir()
	creds, err := events.LoadEmbeddedCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{events.EmbeddedTokenFile, events.EmbeddedReceiverFile, events.EmbeddedKeeperFile, events.EmbeddedReconcilerFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, st, err)
		}
	}
	ns, err := events.RunEmbedded(events.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats"), Credentials: &creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	pw := func(u string) string {
		switch u {
		case events.RoleOperator:
			return creds.Operator
		case events.RoleReceiver:
			return creds.Receiver
		case events.RoleKeeper:
			return creds.Keeper
		}
		return creds.Reconciler
	}
	if nc, err := nats.Connect(ns.ClientURL(), nats.Token(creds.Operator)); err != nil {
		t.Errorf("the operator's token: %v", err)
	} else {
		nc.Close()
	}
	if _, err := nats.Connect(ns.ClientURL(), nats.UserInfo(events.RoleReceiver, creds.Keeper)); err == nil {
		t.Error("the receiver with the keeper's password: connected")
	}
	checkRoles(t, bus{t: t, url: ns.ClientURL(), conn: connector(t, ns.ClientURL(), pw)}, "reconciler", "reconciler-b", false)
}
