package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// mustSmallStream makes the stream with MaxBytes maxBytes and the reconciler's durable consumer.
func mustSmallStream(t *testing.T, js jetstream.JetStream, maxBytes int64) (jetstream.Stream, jetstream.Consumer) {
	t.Helper()
	ctx := context.Background()
	cfg := events.DefaultStreamConfig()
	cfg.MaxBytes = maxBytes
	s, err := events.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := events.EnsureConsumer(ctx, js, events.DefaultConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// webhookOf is a webhook of about size bytes with its own event id.
func webhookOf(id string, size int) *events.Webhook {
	body := `{"id":"` + id + `","pad":"` + strings.Repeat("k", max(size-30, 0)) + `"}`
	return &events.Webhook{Body: []byte(body), EventID: id, EventType: "payment_captured", ReceivedAt: time.Now()}
}

// ackUpTo acks the consumer's messages in order until its ack floor reaches seq.
func ackUpTo(t *testing.T, c jetstream.Consumer, seq uint64) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack floor %d, not %d after 10s", info.AckFloor.Stream, seq)
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// held returns the message ids the stream holds.
func held(t *testing.T, s jetstream.Stream) (map[string]uint64, *jetstream.StreamInfo) {
	t.Helper()
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint64{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ids[m.Header.Get(events.HeaderMsgID)] = seq
	}
	return ids, info
}

// TestRoomNeverPastTheFloor: Room gives up the oldest applied messages until the room asked for
// is free, and never one the ledger has not acked, however much is asked.
func TestRoomNeverPastTheFloor(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	ctx := context.Background()
	_, c := mustSmallStream(t, js, 64<<10)
	pub := events.NewPublisher(js)
	for i := range 20 { // about 22 KB
		if _, err := pub.Publish(ctx, webhookOf(fmt.Sprintf("evt_%02d", i), 800+i*20)); err != nil {
			t.Fatal(err)
		}
	}
	ackUpTo(t, c, 10)
	room := pub.Room()

	b, ok, err := room.Make(ctx, 50<<10)
	if err != nil || !ok || b.FirstSeq == 1 || b.FirstSeq > 11 || b.MaxBytes-int64(b.Bytes) < 50<<10 {
		t.Fatalf("Make(50 KiB) = %+v %v %v: want some applied history given up, free >= 50 KiB", b, ok, err)
	}
	b, ok, err = room.Make(ctx, 63<<10)
	if err != nil || ok || b.FirstSeq != 11 || b.Msgs != 10 || b.AppliedMsgs != 0 {
		t.Fatalf("Make(63 KiB) = %+v %v %v: want every applied message given up and none after the floor", b, ok, err)
	}
	if room.Purged() != 10 {
		t.Fatalf("purged %d, want the 10 applied", room.Purged())
	}
}

// TestPublishersNeverDiscardUnapplied: two publishers on two connections (two receivers) fill a
// 256 KiB stream whose ledger applied a history of small messages and then stopped, with 8 KB
// and 31 KB messages. The applied history makes room; then both get ErrStreamFull; every message
// either acknowledged is in the stream.
func TestPublishersNeverDiscardUnapplied(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	_, js2 := eventstest.MustConnect(t, ns)
	ctx := context.Background()
	s, c := mustSmallStream(t, js, 256<<10)
	history := events.NewPublisher(js)
	for i := range 200 { // about 300 KB: the stream's history is already full of applied messages
		if i%50 == 0 && i > 0 {
			info, _ := s.Info(ctx)
			ackUpTo(t, c, info.State.LastSeq)
		}
		if _, err := history.Publish(ctx, webhookOf(fmt.Sprintf("evt_history_%03d", i), 1500)); err != nil {
			t.Fatalf("history %d: %v", i, err)
		}
	}
	info, _ := s.Info(ctx)
	ackUpTo(t, c, info.State.LastSeq)
	floor := info.State.LastSeq

	var mu sync.Mutex
	acked := map[string]uint64{}
	var full, other int
	var wg sync.WaitGroup
	for p, js := range []jetstream.JetStream{js, js2} {
		pub := events.NewPublisher(js)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				refused := 0
				for i := 0; i < 100 && refused < 5; i++ {
					size := 8 << 10
					if i%3 == 2 {
						size = 31 << 10
					}
					id := fmt.Sprintf("evt_p%d_w%d_%03d", p, w, i)
					st, err := pub.Publish(ctx, webhookOf(id, size))
					mu.Lock()
					switch {
					case err == nil:
						acked[id] = st.Seq
					case errors.Is(err, events.ErrStreamFull) && errors.Is(err, events.ErrNotStored):
						full++
						refused++
					default:
						other++
						t.Errorf("publish %s: %v", id, err)
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	ids, info := held(t, s)
	lost := 0
	for id, seq := range acked {
		if ids[id] != seq {
			lost++
		}
	}
	t.Logf("two publishers, 8/31 KB on a 256 KiB stream after 200 applied 1.5 KB: %d acknowledged, %d lost, %d ErrStreamFull; stream seq %d..%d, %d bytes",
		len(acked), lost, full, info.State.FirstSeq, info.State.LastSeq, info.State.Bytes)
	if lost != 0 || full == 0 || other != 0 {
		t.Fatalf("%d of %d acknowledged messages lost, %d ErrStreamFull, %d other errors", lost, len(acked), full, other)
	}
	if info.State.FirstSeq != floor+1 || info.State.Bytes > 256<<10 {
		t.Fatalf("stream from seq %d (ack floor %d), %d bytes: want all applied history given up and the limit kept", info.State.FirstSeq, floor, info.State.Bytes)
	}
}

// TestGuardReportsLostAndDiscardOld: a stream set back to DiscardOld (by hand, or by an older
// release) is reported once; when it then discards messages the ledger had not acked, the loss is
// reported once, counted and exported. Near its limit, the Guard gives up applied history.
//
// An operator's purge is not seen here: nats-server moves the consumers' ack floors along with
// it. The reconciler's own gap check (its ledger's position against the stream) sees that one.
func TestGuardReportsLostAndDiscardOld(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	ctx := context.Background()
	s, c := mustSmallStream(t, js, 32<<10)
	pub := events.NewPublisher(js)
	for i := range 10 {
		if _, err := pub.Publish(ctx, webhookOf(fmt.Sprintf("evt_%02d", i), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	ackUpTo(t, c, 4)
	var lost []events.LostRange
	var errs []error
	reg := prometheus.NewRegistry()
	g := events.NewGuard(pub.Room(), events.GuardConfig{Limit: 0.9, Every: time.Hour,
		OnLost: func(l events.LostRange) { lost = append(lost, l) }, OnError: func(err error) { errs = append(errs, err) }}, reg)
	if _, err := g.Refresh(ctx); err != nil || len(lost) != 0 || len(errs) != 0 {
		t.Fatalf("nothing lost yet: %v %v %v", lost, errs, err)
	}

	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.Discard = jetstream.DiscardOld
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], events.ErrDiscardOld) {
		t.Fatalf("errors %v, want ErrDiscardOld", errs)
	}
	// Overflowing it now discards 5, 6, 7… which the ledger had not acked.
	for i := 10; ; i++ {
		if i == 1000 {
			t.Fatal("the stream never discarded anything")
		}
		if _, err := js.Publish(ctx, events.Subject("payment_captured"), []byte(strings.Repeat("k", 4000))); err != nil {
			t.Fatal(err)
		}
		if info, err = s.Info(ctx); err != nil {
			t.Fatal(err)
		}
		if info.State.FirstSeq >= 8 {
			break
		}
	}
	for range 2 {
		if _, err := g.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := info.State.FirstSeq - 5
	if len(errs) != 1 {
		t.Fatalf("errors %v, want ErrDiscardOld once", errs)
	}
	if len(lost) != 1 || lost[0].Consumer != "reconciler" || lost[0].Floor != 4 || lost[0].FirstSeq != info.State.FirstSeq || lost[0].Msgs() != want {
		t.Fatalf("reported %+v, want reconciler's 5..%d once", lost, info.State.FirstSeq-1)
	}
	if got := gathered(t, reg, "knetrecon_stream_lost_unapplied_messages_total"); got != float64(want) {
		t.Fatalf("lost total %v, want %d", got, want)
	}
	if got := gathered(t, reg, "knetrecon_stream_lost_unapplied_messages"); got != float64(want) {
		t.Fatalf("lost gauge %v, want %d", got, want)
	}

	// Back to DiscardNew; near the limit with applied history, the Guard gives it up, down to 5 % free.
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{Replicas: 1, MaxAge: cfg.MaxAge, MaxBytes: cfg.MaxBytes, Duplicates: cfg.Duplicates}); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Info(ctx)
	ackUpTo(t, c, info.State.LastSeq)
	for i := 100; ; i++ {
		if i == 1000 {
			t.Fatal("the stream never neared its limit")
		}
		if _, err := pub.Publish(ctx, webhookOf(fmt.Sprintf("evt_%02d", i), 700)); err != nil {
			t.Fatal(err)
		}
		b, err := events.ReadBacklog(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		if b.MaxBytes-int64(b.Bytes) < b.MaxBytes/40 {
			break
		}
	}
	b, err := g.Refresh(ctx)
	if err != nil || b.MaxBytes-int64(b.Bytes) < b.MaxBytes/20 || b.FirstSeq > info.State.LastSeq+1 || gathered(t, reg, "knetrecon_stream_room_purged_messages_total") == 0 {
		t.Fatalf("after Refresh near the limit: %+v %v", b, err)
	}
}

// gathered reads one series' value from reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}
