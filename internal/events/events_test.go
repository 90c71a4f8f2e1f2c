package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

func TestSubject(t *testing.T) {
	tests := []struct{ give, want string }{
		{"payment_captured", "checkout.events.payment_captured"},
		{"dispute-opened", "checkout.events.dispute-opened"},
		{"a.b", "checkout.events.a_b"},
		{"x*>y z", "checkout.events.x__y_z"},
		{"", "checkout.events._"},
	}
	for _, tt := range tests {
		if got := events.Subject(tt.give); got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestStreamConfigValidate(t *testing.T) {
	if err := events.DefaultStreamConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	bad := events.DefaultStreamConfig()
	bad.Duplicates = 2 * time.Minute
	bad.Replicas = 0
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "KNETRECON_STREAM_DUPLICATE_WINDOW") || !strings.Contains(err.Error(), "KNETRECON_STREAM_REPLICAS") {
		t.Fatalf("Validate() = %v, want both variables named", err)
	}
}

func TestEnsureStreamIdempotent(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	ctx := context.Background()
	for range 2 {
		if _, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig()); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates < 48*time.Hour || info.Config.Discard != jetstream.DiscardNew || info.Config.Storage != jetstream.FileStorage {
		t.Fatalf("stream config = %+v", info.Config)
	}
}

func TestPublishDedupAndHeaders(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	stream := eventstest.MustEnsureStream(t, js)
	pub := events.NewPublisher(js)
	ctx := context.Background()
	at := time.Date(2026, 11, 25, 10, 0, 0, 123, time.UTC)
	w := &events.Webhook{Body: []byte(`{"id":"evt_a","type":"payment_captured"}`), EventID: "evt_a", EventType: "payment_captured", KeyName: "key2", ReceivedAt: at}
	first, err := pub.Publish(ctx, w)
	if err != nil || first.Duplicate {
		t.Fatalf("first publish = %+v, %v", first, err)
	}
	again, err := pub.Publish(ctx, w)
	if err != nil || !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("second publish = %+v, %v; want duplicate of seq %d", again, err, first.Seq)
	}
	q := &events.Webhook{Body: []byte("not json"), KeyName: "key1", ReceivedAt: at, QuarantineReason: "not JSON"}
	if _, err := pub.Publish(ctx, q); err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream has %d messages, want 2", info.State.Msgs)
	}
	msg, err := stream.GetMsg(ctx, first.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "checkout.events.payment_captured" || string(msg.Data) != string(w.Body) ||
		msg.Header.Get(events.HeaderMsgID) != "evt_a" || msg.Header.Get(events.HeaderKey) != "key2" ||
		msg.Header.Get(events.HeaderReceivedAt) != "2026-11-25T10:00:00.000000123Z" {
		t.Fatalf("stored message = %s %q %v", msg.Subject, msg.Data, msg.Header)
	}
	qm, err := stream.GetLastMsgForSubject(ctx, events.QuarantineSubject)
	if err != nil {
		t.Fatal(err)
	}
	if qm.Header.Get(events.HeaderQuarantineReason) != "not JSON" || !strings.HasPrefix(qm.Header.Get(events.HeaderMsgID), "sha256:") {
		t.Fatalf("quarantined message headers = %v", qm.Header)
	}
}

func TestPublishNotStoredWhenNATSDown(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	ns.Shutdown()
	ns.WaitForShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := events.NewPublisher(js).Publish(ctx, &events.Webhook{Body: []byte("{}"), EventID: "evt_b", EventType: "x", ReceivedAt: time.Now()})
	if err == nil {
		t.Fatal("publish with NATS down succeeded")
	}
	if !errors.Is(err, events.ErrNotStored) {
		t.Fatalf("err = %v, want ErrNotStored", err)
	}
}

// TestBacklogAndUpgradeToDiscardNew: a stream made by an earlier release (DiscardOld, which let
// the stream discard unapplied messages) is moved to DiscardNew by EnsureStream; the backlog
// counts what lies after the slowest durable consumer's ack floor (everything while there is
// none, exactly in bytes) and what is applied, and ignores ordered replays.
func TestBacklogAndUpgradeToDiscardNew(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamName, Subjects: []string{events.SubjectPrefix + ">", events.QuarantineSubject},
		Discard: jetstream.DiscardOld, MaxBytes: 1 << 20, Duplicates: 72 * time.Hour, MaxAge: 14 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	s, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.Config.Discard != jetstream.DiscardNew {
		t.Fatalf("discard policy after EnsureStream: %v %v", info.Config.Discard, err)
	}
	pub := events.NewPublisher(js)
	for i := range 10 {
		id := fmt.Sprintf("evt_%d", i)
		if _, err := pub.Publish(ctx, &events.Webhook{Body: []byte(`{"id":"` + id + `"}`), EventID: id, EventType: "payment_captured"}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := events.ReadBacklog(ctx, js)
	if err != nil || b.Consumers != 0 || b.UnappliedMsgs != 10 || b.AppliedMsgs != 0 || b.UnappliedBytes != b.Bytes || !b.DiscardNew || len(b.Lost) != 0 {
		t.Fatalf("no consumer: %+v %v", b, err)
	}
	if _, err := events.Replay(ctx, js, events.ReplayFrom{}); err != nil {
		t.Fatal(err)
	}
	c, err := events.EnsureConsumer(ctx, js, events.DefaultConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(4)
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b, err = events.ReadBacklog(ctx, js)
	if err != nil || b.Consumers != 1 || b.Floor != 4 || b.UnappliedMsgs != 6 || b.AppliedMsgs != 4 || b.UnappliedBytes != b.Bytes*6/10 || len(b.Lost) != 0 {
		t.Fatalf("4 of 10 acked: %+v %v", b, err)
	}
}
