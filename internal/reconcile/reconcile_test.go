package reconcile

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/payment"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// body is a webhook body in Checkout.com's shape.
func body(id, typ, pid, action, amount, currency string) []byte {
	act := ""
	if action != "" {
		act = fmt.Sprintf(`"action_id":%q,`, action)
	}
	return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"version":"1.0.1","created_on":"2026-03-01T10:00:00.1234567Z",`+
		`"data":{%s"id":%q,"amount":%s,"currency":%q,"reference":"ORD-1","source":{"type":"knet"},"customer":{"id":"cus_1"}}}`,
		id, typ, act, pid, amount, currency))
}

type rig struct {
	js     jetstream.JetStream
	pub    *events.Publisher
	ledger *store.Ledger
	reg    *prometheus.Registry
	proc   *Processor
	cfg    events.ConsumerConfig
}

func newRig(t *testing.T, cfg events.ConsumerConfig, ledger *store.Ledger) *rig {
	t.Helper()
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	if ledger == nil {
		ledger = storetest.MustOpenLedger(t)
	}
	reg := prometheus.NewRegistry()
	return &rig{js: js, pub: events.NewPublisher(js), ledger: ledger, reg: reg, cfg: cfg,
		proc: NewProcessor(ledger, zaptest.NewLogger(t), NewMetrics(reg), cfg.MaxDeliver)}
}

func (r *rig) publish(t *testing.T, b []byte, typ, id string) {
	t.Helper()
	w := &events.Webhook{Body: b, EventID: id, EventType: typ, KeyName: "primary", ReceivedAt: t0}
	if id == "" {
		w.QuarantineReason = "not JSON"
	}
	if _, err := r.pub.Publish(context.Background(), w); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) batches(t *testing.T, size int) *events.Batches {
	t.Helper()
	c, err := events.EnsureConsumer(context.Background(), r.js, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.NewBatches(c, size, 200*time.Millisecond, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) totals(t *testing.T) store.Totals {
	t.Helper()
	tot, err := r.ledger.Totals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tot
}

func (r *rig) consumerInfo(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := r.js.Consumer(context.Background(), events.StreamName, r.cfg.Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestPoisonDeadLetteredNeighboursApplied runs the consumer loop over a stream holding good
// events, a poison event in their middle and a quarantined body.
func TestPoisonDeadLetteredNeighboursApplied(t *testing.T) {
	r := newRig(t, events.DefaultConsumerConfig(), nil)
	for i := 0; i < 10; i++ {
		pid := fmt.Sprintf("pay_%d", i)
		r.publish(t, body("evt_p"+pid, "payment_pending", pid, "", "1000", "KWD"), "payment_pending", "evt_p"+pid)
		if i == 5 {
			r.publish(t, body("evt_neg", "payment_captured", pid, "act_neg", "-1000", "KWD"), "payment_captured", "evt_neg")
			r.publish(t, body("evt_frac", "payment_captured", pid, "act_frac", "10.5", "KWD"), "payment_captured", "evt_frac")
			r.publish(t, body("evt_cur", "payment_captured", pid, "act_cur", "1000", "KD"), "payment_captured", "evt_cur")
			r.publish(t, []byte(`{"id":"evt_x",`), "", "")
		}
		r.publish(t, body("evt_c"+pid, "payment_captured", pid, "act_"+pid, "1000", "KWD"), "payment_captured", "evt_c"+pid)
	}
	cons := NewConsumer(r.proc, r.batches(t, 64), zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx, 5*time.Second) }()
	eventually(t, "all applied", func() bool {
		tot := r.totals(t)
		return tot.Events == 20 && tot.DeadLetters == 4
	})
	eventually(t, "all acked", func() bool {
		info := r.consumerInfo(t)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		p, err := r.ledger.Payment(context.Background(), fmt.Sprintf("pay_%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != payment.StatusCaptured || p.Captured != 1000 || p.Method != "knet" || p.Customer != "cus_1" {
			t.Fatalf("payment %d: %+v", i, p.Payment)
		}
	}
	dls, err := r.ledger.DeadLetters(context.Background(), false, 10)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, d := range dls {
		reasons[d.Reason] = true
		if len(d.Body) == 0 || d.StreamSeq == 0 {
			t.Fatalf("dead letter without body or seq: %+v", d)
		}
	}
	t.Logf("dead letters: %v", reasons)
	if got := testutil.ToFloat64(r.proc.metrics.deadLetters.WithLabelValues(causeQuarantined)); got != 1 {
		t.Fatalf("quarantined dead letters %v", got)
	}
	if got := testutil.ToFloat64(r.proc.metrics.deadLetters.WithLabelValues(causeUndecodable)); got != 3 {
		t.Fatalf("undecodable dead letters %v", got)
	}
	if got := testutil.ToFloat64(r.proc.metrics.applied.WithLabelValues("payment_captured", "applied")); got != 10 {
		t.Fatalf("applied captures %v", got)
	}

	// Replaying the whole stream, twice, changes nothing.
	before := r.totals(t)
	for i := 0; i < 2; i++ {
		st, err := r.proc.Replay(context.Background(), r.js, events.ReplayFrom{Seq: 1}, 7)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != 24 || st.Outcomes[store.OutcomeDuplicate] != 20 || st.DeadLettered != 4 {
			t.Fatalf("replay %d: %+v", i, st)
		}
		if after := r.totals(t); after != before {
			t.Fatalf("replay changed the ledger: %+v -> %+v", before, after)
		}
	}

	// A dead letter replayed: the quarantined body still cannot be decoded.
	for _, d := range dls {
		if d.Subject == events.QuarantineSubject {
			if _, err := r.replay(d.ID); err == nil {
				t.Fatal("replaying an undecodable body must fail")
			}
			got, _ := r.ledger.DeadLetter(context.Background(), d.ID)
			if got.ReplayedAt == nil || got.ReplayResult == "applied" {
				t.Fatalf("replay not recorded: %+v", got)
			}
		}
	}
}

// TestCrashBetweenCommitAndAck: the batch is committed, the process "dies" before acking; the
// redelivery changes nothing in the ledger.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	cfg := events.DefaultConsumerConfig()
	cfg.AckWait = time.Second
	r := newRig(t, cfg, nil)
	for i := 0; i < 5; i++ {
		pid := fmt.Sprintf("pay_%d", i)
		r.publish(t, body("evt_c"+pid, "payment_captured", pid, "act_"+pid, "1000", "KWD"), "payment_captured", "evt_c"+pid)
		r.publish(t, body("evt_r"+pid, "payment_refunded", pid, "act_r"+pid, "400", "KWD"), "payment_refunded", "evt_r"+pid)
	}
	b := r.batches(t, 100)
	ctx := context.Background()
	msgs, err := b.Next(ctx)
	if err != nil || len(msgs) != 10 {
		t.Fatalf("batch of %d, %v", len(msgs), err)
	}
	r.proc.AfterCommit = func() bool { return false } // die before the acks
	r.proc.HandleBatch(ctx, msgs)
	r.proc.AfterCommit = nil
	before := r.totals(t)
	if before.Events != 10 || before.Postings != 10 {
		t.Fatalf("after commit: %+v", before)
	}

	var again []jetstream.Msg
	eventually(t, "redelivery", func() bool {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		m, _ := b.Next(short)
		again = append(again, m...)
		return len(again) == 10
	})
	d, _ := events.DeliveryOf(again[0])
	if d.NumDelivered != 2 {
		t.Fatalf("redelivery number %d", d.NumDelivered)
	}
	r.proc.HandleBatch(ctx, again)
	if after := r.totals(t); after != before {
		t.Fatalf("redelivery changed the ledger: %+v -> %+v", before, after)
	}
	if got := testutil.ToFloat64(r.proc.metrics.duplicates); got != 10 {
		t.Fatalf("duplicates %v", got)
	}
	eventually(t, "acked", func() bool { return r.consumerInfo(t).NumAckPending == 0 })
	p, _ := r.ledger.Payment(ctx, "pay_0")
	if p.Status != payment.StatusPartiallyRefunded || p.Refunded != 400 {
		t.Fatalf("%+v", p.Payment)
	}
}

// TestBusyLedgerHeldThenApplied: another process holds the write lock for longer than
// MaxDeliver × AckWait. The batch is held and retried, kept alive with in-progress acks: no
// redelivery is spent, nothing is dead-lettered, the failure is visible, and the batch is applied
// once the lock is gone.
func TestBusyLedgerHeldThenApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	ledger, err := store.OpenWith(context.Background(), path, store.Options{BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	cfg := events.DefaultConsumerConfig()
	cfg.MaxDeliver, cfg.AckWait = 2, time.Second
	r := newRig(t, cfg, ledger)
	r.proc.AckWait, r.proc.RetryMax = cfg.AckWait, 200*time.Millisecond
	r.publish(t, body("evt_c", "payment_captured", "pay_1", "act_c", "1000", "KWD"), "payment_captured", "evt_c")

	other, err := sql.Open("sqlite3", store.DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	lock, err := other.BeginTx(context.Background(), nil) // _txlock=immediate: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(`UPDATE schema_migrations SET name = name`); err != nil {
		t.Fatal(err)
	}
	b := r.batches(t, 10)
	ctx := context.Background()
	msgs, err := b.Next(ctx)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d %v", len(msgs), err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.proc.HandleBatch(ctx, msgs)
	}()
	eventually(t, "the ledger reported failing", func() bool {
		return r.proc.Failing() && testutil.ToFloat64(r.proc.metrics.ledgerFailing) == 1
	})
	// Hold the lock past MaxDeliver × AckWait: the server must not redeliver or give up.
	locked := time.Now()
	for time.Since(locked) < time.Duration(cfg.MaxDeliver+1)*cfg.AckWait {
		if info := r.consumerInfo(t); info.NumRedelivered != 0 || info.NumAckPending != 1 {
			t.Fatalf("while held: redelivered %d, ack pending %d", info.NumRedelivered, info.NumAckPending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	<-done
	if tot := r.totals(t); tot.Events != 1 || tot.Postings != 1 || tot.DeadLetters != 0 {
		t.Fatalf("%+v", tot)
	}
	if r.proc.Failing() || testutil.ToFloat64(r.proc.metrics.ledgerFailing) != 0 || testutil.ToFloat64(r.proc.metrics.ledgerRetries) < 3 {
		t.Fatalf("failing %v, gauge %v, retries %v", r.proc.Failing(), testutil.ToFloat64(r.proc.metrics.ledgerFailing),
			testutil.ToFloat64(r.proc.metrics.ledgerRetries))
	}
	eventually(t, "acked", func() bool {
		info := r.consumerInfo(t)
		return info.NumAckPending == 0 && info.NumRedelivered == 0
	})
	if err := ledger.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHeldBatchHandedBackAtStop: the reconciler stops while the ledger still fails: the batch is
// handed back (not dead-lettered), and is there for the next start.
func TestHeldBatchHandedBackAtStop(t *testing.T) {
	cfg := events.DefaultConsumerConfig()
	r := newRig(t, cfg, nil)
	r.publish(t, body("evt_c", "payment_captured", "pay_1", "act_c", "1000", "KWD"), "payment_captured", "evt_c")
	r.proc.beforeApply = func() { panic("the ledger is gone") }
	b := r.batches(t, 10)
	msgs, err := b.Next(context.Background())
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d %v", len(msgs), err)
	}
	stop, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.proc.HandleBatch(stop, msgs)
	}()
	eventually(t, "failing", r.proc.Failing)
	cancel()
	<-done
	if tot := r.totals(t); tot.Events != 0 || tot.DeadLetters != 0 {
		t.Fatalf("%+v", tot)
	}
	r.proc.beforeApply = nil
	var again []jetstream.Msg
	eventually(t, "redelivery after the nak", func() bool {
		short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		m, _ := b.Next(short)
		again = append(again, m...)
		return len(again) == 1
	})
	r.proc.HandleBatch(context.Background(), again)
	if tot := r.totals(t); tot.Events != 1 || tot.DeadLetters != 0 {
		t.Fatalf("%+v", tot)
	}
}

// TestPanicOnceGoesOn: an event whose write panics once (a fault that passes) is applied on the
// next attempt with its neighbours; nothing is dead-lettered.
func TestPanicOnceGoesOn(t *testing.T) {
	r := newRig(t, events.DefaultConsumerConfig(), nil)
	r.proc.RetryMin = time.Millisecond
	for _, id := range []string{"1", "2", "3"} {
		r.publish(t, body("evt_"+id, "payment_captured", "pay_"+id, "act_"+id, "1000", "KWD"), "payment_captured", "evt_"+id)
	}
	panicked := 0
	r.proc.BeforeEvent = func(in store.Input) {
		if in.EventID == "evt_2" && panicked == 0 {
			panicked++
			panic("injected")
		}
	}
	r.proc.HandleBatch(context.Background(), r.take(t, 3))
	if tot := r.totals(t); tot.Events != 3 || tot.Postings != 3 || tot.DeadLetters != 0 || panicked != 1 {
		t.Fatalf("%+v, panicked %d", tot, panicked)
	}
}

// TestPanickingEventDeadLettered: an event whose write panics every time is dead-lettered after
// MaxDeliver panics of its own, with the panic as its reason; its neighbours are applied, and
// the fixed code applies it on replay.
func TestPanickingEventDeadLettered(t *testing.T) {
	cfg := events.DefaultConsumerConfig()
	cfg.MaxDeliver = 3
	r := newRig(t, cfg, nil)
	r.proc.RetryMin = time.Millisecond
	for _, id := range []string{"1", "2", "3"} {
		r.publish(t, body("evt_"+id, "payment_captured", "pay_"+id, "act_"+id, "1000", "KWD"), "payment_captured", "evt_"+id)
	}
	panics := 0
	r.proc.BeforeEvent = func(in store.Input) {
		if in.EventID == "evt_2" {
			panics++
			panic("a bug in the handler")
		}
	}
	ctx := context.Background()
	r.proc.HandleBatch(ctx, r.take(t, 3))
	if tot := r.totals(t); tot.Events != 2 || tot.Postings != 2 || tot.DeadLetters != 1 {
		t.Fatalf("%+v", tot)
	}
	if panics < cfg.MaxDeliver {
		t.Fatalf("dead-lettered after %d panics, want at least %d", panics, cfg.MaxDeliver)
	}
	dls, err := r.ledger.DeadLetters(ctx, true, 10)
	if err != nil || len(dls) != 1 || !strings.Contains(dls[0].Reason, "a bug in the handler") || dls[0].MsgID != "evt_2" {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	if got := testutil.ToFloat64(r.proc.metrics.deadLetters.WithLabelValues(causePanic)); got != 1 {
		t.Fatalf("panic dead letters %v", got)
	}
	eventually(t, "settled", func() bool {
		info := r.consumerInfo(t)
		return info.NumAckPending == 0 && info.NumRedelivered == 0
	})
	// The bug is fixed: replaying the dead letter applies the event.
	r.proc.BeforeEvent = nil
	res, err := r.replay(dls[0].ID)
	if err != nil || res.Outcome != store.OutcomeApplied {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if p, err := r.ledger.Payment(ctx, "pay_2"); err != nil || p.Captured != 1000 {
		t.Fatalf("%v %v", p, err)
	}
}

// take pulls n messages from a fresh puller on the rig's consumer.
func (r *rig) take(t *testing.T, n int) []jetstream.Msg {
	t.Helper()
	b := r.batches(t, n)
	var msgs []jetstream.Msg
	eventually(t, fmt.Sprintf("%d messages", n), func() bool {
		short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		m, _ := b.Next(short)
		msgs = append(msgs, m...)
		return len(msgs) >= n
	})
	return msgs
}

// TestApplyFailureMidBatch: an event that fails inside Apply after it has written rows (a test
// trigger refuses its event row), in the same batch as a poison body and good neighbours. The
// batch's first, savepoint-free run is rolled back and redone with savepoints: the failed event is
// dead-lettered with nothing of it left in the ledger, the poison body too, and the rest applied.
func TestApplyFailureMidBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	ledger := storetest.MustOpenLedgerAt(t, path)
	other, err := sql.Open("sqlite3", store.DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`CREATE TRIGGER refuse_bad BEFORE INSERT ON events WHEN NEW.id = 'evt_bad'
		BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, events.DefaultConsumerConfig(), ledger)
	r.publish(t, body("evt_c1", "payment_captured", "pay_1", "act_1", "1000", "KWD"), "payment_captured", "evt_c1")
	r.publish(t, body("evt_bad", "payment_captured", "pay_2", "act_bad", "500", "KWD"), "payment_captured", "evt_bad")
	r.publish(t, []byte(`{"id":"evt_x",`), "", "")
	r.publish(t, body("evt_c3", "payment_captured", "pay_3", "act_3", "700", "KWD"), "payment_captured", "evt_c3")

	b := r.batches(t, 10)
	ctx := context.Background()
	var msgs []jetstream.Msg
	eventually(t, "one batch of four", func() bool {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		m, _ := b.Next(short)
		msgs = append(msgs, m...)
		return len(msgs) == 4
	})
	r.proc.HandleBatch(ctx, msgs)
	if tot := r.totals(t); tot.Events != 2 || tot.Postings != 2 || tot.DeadLetters != 2 {
		t.Fatalf("%+v", tot)
	}
	var left int
	if err := other.QueryRow(`SELECT (SELECT COUNT(*) FROM payments WHERE id = 'pay_2')
		+ (SELECT COUNT(*) FROM postings WHERE action_id = 'act_bad') + (SELECT COUNT(*) FROM journal WHERE action_id = 'act_bad')`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d rows of the refused event survived", left)
	}
	dls, err := ledger.DeadLetters(ctx, false, 10)
	if err != nil {
		t.Fatal(err)
	}
	var refused bool
	for _, d := range dls {
		refused = refused || strings.Contains(d.Reason, "refused by test trigger")
	}
	if !refused {
		t.Fatalf("no dead letter carries Apply's reason: %+v", dls)
	}
	eventually(t, "all settled", func() bool {
		info := r.consumerInfo(t)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

// TestForgedMessagesNeverApplied: with the key ring set, a message published on the bus by anyone
// but the receiver (no signature, a wrong one, or an authentic signature over an altered body) is
// dead-lettered as forged and never reaches the ledger; a replay of it is refused too. The
// authentic neighbour is applied.
func TestForgedMessagesNeverApplied(t *testing.T) {
	const key = "whsec_bus_test"
	r := newRig(t, events.DefaultConsumerConfig(), nil)
	ring, err := checkout.NewKeyRing(checkout.Key{Secret: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	r.proc.SetKeys(ring)
	ctx := context.Background()
	pub := func(b []byte, id, sig string) {
		w := &events.Webhook{Body: b, EventID: id, EventType: "payment_captured", ReceivedAt: t0, Signature: sig}
		if _, err := r.pub.Publish(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	good := body("evt_ok", "payment_captured", "pay_ok", "act_ok", "1000", "KWD")
	pub(good, "evt_ok", checkout.Sign([]byte(key), good))
	forged := body("evt_f1", "payment_captured", "pay_f", "act_f1", "999990", "KWD")
	pub(forged, "evt_f1", "")
	pub(body("evt_f2", "payment_captured", "pay_f", "act_f2", "999990", "KWD"), "evt_f2", checkout.Sign([]byte("not-our-key"), forged))
	altered := body("evt_f3", "payment_captured", "pay_f", "act_f3", "999990", "KWD")
	pub(altered, "evt_f3", checkout.Sign([]byte(key), body("evt_f3", "payment_captured", "pay_f", "act_f3", "1000", "KWD")))
	r.proc.HandleBatch(ctx, r.take(t, 4))
	if tot := r.totals(t); tot.Events != 1 || tot.Postings != 1 || tot.DeadLetters != 3 {
		t.Fatalf("%+v", tot)
	}
	if _, err := r.ledger.Payment(ctx, "pay_f"); err == nil {
		t.Fatal("a forged capture reached the ledger")
	}
	if got := testutil.ToFloat64(r.proc.metrics.deadLetters.WithLabelValues(causeForged)); got != 3 {
		t.Fatalf("forged dead letters %v", got)
	}
	dls, err := r.ledger.DeadLetters(ctx, false, 10)
	if err != nil || len(dls) != 3 {
		t.Fatalf("%v %v", dls, err)
	}
	for _, d := range dls {
		if !strings.Contains(d.Reason, "forged") {
			t.Errorf("reason %q", d.Reason)
		}
		if _, err := r.replay(d.ID); err == nil {
			t.Errorf("replaying forged dead letter %d was accepted", d.ID)
		}
	}
	if _, err := r.ledger.Payment(ctx, "pay_f"); err == nil {
		t.Fatal("a replayed forged capture reached the ledger")
	}
}

// TestLagReadFromTheStream: the lag gauges come from the server on a timer, so a consumer that
// applies nothing (hung, dead) still shows its lag: 3 messages behind, the oldest a minute old.
func TestLagReadFromTheStream(t *testing.T) {
	r := newRig(t, events.DefaultConsumerConfig(), nil)
	for _, id := range []string{"1", "2", "3"} {
		r.publish(t, body("evt_"+id, "payment_captured", "pay_"+id, "act_"+id, "1000", "KWD"), "payment_captured", "evt_"+id)
	}
	if _, err := events.EnsureConsumer(context.Background(), r.js, r.cfg); err != nil {
		t.Fatal(err)
	}
	r.proc.Now = func() time.Time { return time.Now().Add(time.Minute) }
	r.proc.readLag(context.Background(), r.js, r.cfg.Durable)
	if got := testutil.ToFloat64(r.proc.metrics.lagMessages); got != 3 {
		t.Fatalf("lag messages %v, want 3", got)
	}
	if got := testutil.ToFloat64(r.proc.metrics.lagSeconds); got < 59 || got > 120 {
		t.Fatalf("lag seconds %v, want about 60", got)
	}
	r.proc.HandleBatch(context.Background(), r.take(t, 3))
	eventually(t, "caught up", func() bool {
		r.proc.readLag(context.Background(), r.js, r.cfg.Durable)
		return testutil.ToFloat64(r.proc.metrics.lagMessages) == 0 && testutil.ToFloat64(r.proc.metrics.lagSeconds) == 0
	})
}

// replay applies dead letter id again as a replay fact does, in a transaction of its own.
func (r *rig) replay(id int64) (store.Result, error) {
	var res store.Result
	var rerr error
	err := r.ledger.Update(context.Background(), func(tx *store.Tx) error {
		res, rerr = r.proc.replayIn(context.Background(), tx, id)
		if store.IsTransient(rerr) {
			return rerr
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	return res, rerr
}

// TestFactsSignedAndAppliedOnce: a fact signed with the reconcilers' key is applied once, however
// often it is delivered (a crash between commit and ack, a replay); a fact signed by a stranger,
// altered on the bus, or met by a reconciler with no fact key, is dead-lettered as forged.
func TestFactsSignedAndAppliedOnce(t *testing.T) {
	ctx := context.Background()
	ring, err := checkout.NewKeyRing(checkout.Key{Secret: []byte("fact-key")})
	if err != nil {
		t.Fatal(err)
	}
	check := func(id string, next time.Time) []byte {
		b, _ := json.Marshal(Fact{Kind: FactCheck, ID: id, At: t0, Check: &CheckFact{PaymentID: "pay_1", LedgerStatus: payment.StatusPending,
			Outcome: CheckStillPending, NextCheckAt: next}})
		return b
	}
	good := check("check:pay_1:1", t0.Add(time.Hour))
	sig, _ := ring.Sign(good)
	forged := check("check:pay_1:2", t0.Add(99*time.Hour))
	altered := check("check:pay_1:3", t0.Add(98*time.Hour))
	facts := []struct {
		id   string
		body []byte
		sig  string
	}{{"check:pay_1:1", good, sig}, {"check:pay_1:2", forged, checkout.Sign([]byte("a stranger's key"), forged)}, {"check:pay_1:3", altered, sig}}
	run := func(keys *checkout.KeyRing) *rig {
		t.Helper()
		r := newRig(t, events.DefaultConsumerConfig(), nil)
		if keys != nil {
			r.proc.SetFactKeys(keys)
		}
		if _, err := r.ledger.Apply(ctx, store.Input{EventID: "evt_1", Type: payment.EventPending, PaymentID: "pay_1", Amount: 1000,
			Currency: "KWD", Origin: store.OriginWebhook, OccurredAt: t0, ReceivedAt: t0, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		for _, f := range facts {
			if _, err := r.pub.PublishMsg(ctx, events.FactMessage(FactCheck, f.id, f.body, f.sig, "")); err != nil {
				t.Fatal(err)
			}
		}
		r.proc.HandleBatch(ctx, r.take(t, len(facts)))
		return r
	}
	checks := func(r *rig) []store.CheckRecord {
		t.Helper()
		cs, err := r.ledger.Checks(ctx, "pay_1", 10)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	// A reconciler without the fact keys applies none of them.
	if r := run(nil); r.totals(t).DeadLetters != 3 || len(checks(r)) != 0 {
		t.Fatalf("without fact keys: %+v, %d checks", r.totals(t), len(checks(r)))
	}
	// With them: the signed one is applied, the other two are forged.
	r := run(ring)
	if got := testutil.ToFloat64(r.proc.metrics.deadLetters.WithLabelValues(causeForged)); got != 2 || len(checks(r)) != 1 {
		t.Fatalf("forged %v, checks %+v", got, checks(r))
	}
	// Delivered again (the whole stream replayed): applied once still.
	st, err := r.proc.Replay(ctx, r.js, events.ReplayFrom{Seq: 1}, 10)
	if err != nil || st.Messages != 3 || len(checks(r)) != 1 {
		t.Fatalf("replay %+v %v: checks %+v", st, err, checks(r))
	}
	if p, err := r.ledger.Payment(ctx, "pay_1"); err != nil || !p.NextCheckAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("next check %v %v", p, err)
	}
}
