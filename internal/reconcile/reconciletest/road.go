// Package reconciletest runs the reconciler's real road for tests: an embedded JetStream server,
// the stream, a durable consumer applying it to a real ledger, and the fact bus the sweep and the
// operators publish on.
package reconciletest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// FactKey is the reconcilers' fact key the road signs and verifies with.
const FactKey = "test-fact-key"

// Road is a running consumer over a real stream, with its fact bus.
type Road struct {
	JS    jetstream.JetStream
	Proc  *reconcile.Processor
	Facts *reconcile.FactBus
	Ops   *reconcile.Operator
}

// MustRunRoad starts an embedded NATS server, the stream and a consumer applying it to ledger,
// stopped when the test ends. webhookKeys, when not nil, verify webhooks as production does.
func MustRunRoad(tb testing.TB, ledger *store.Ledger, webhookKeys *checkout.KeyRing) *Road {
	tb.Helper()
	ns := eventstest.MustRunNATS(tb)
	_, js := eventstest.MustConnect(tb, ns)
	eventstest.MustEnsureStream(tb, js)
	log := zap.NewNop()
	if t, ok := tb.(*testing.T); ok {
		log = zaptest.NewLogger(t)
	}
	proc := reconcile.NewProcessor(ledger, log.Named("apply"), reconcile.NewMetrics(prometheus.NewRegistry()), 5)
	ring, err := checkout.NewKeyRing(checkout.Key{Name: "facts", Secret: []byte(FactKey)})
	if err != nil {
		tb.Fatal(err)
	}
	proc.SetFactKeys(ring)
	if webhookKeys != nil {
		proc.SetKeys(webhookKeys)
	}
	ctx := context.Background()
	cfg := events.DefaultConsumerConfig()
	c, err := events.EnsureConsumer(ctx, js, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := events.NewBatches(c, 256, 100*time.Millisecond, 2*time.Millisecond)
	if err != nil {
		tb.Fatal(err)
	}
	loop := reconcile.NewConsumer(proc, b, log.Named("consumer"))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = loop.Run(runCtx, 2*time.Second)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	facts := reconcile.NewFactBus(js, ledger, proc, ring, "test")
	return &Road{JS: js, Proc: proc, Facts: facts, Ops: reconcile.NewOperator(ledger, facts)}
}
