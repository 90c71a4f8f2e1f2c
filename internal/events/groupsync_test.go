package events_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// TestGroupSyncAfterPubAck: what GroupSync relies on holds for the nats-server in go.mod: once a
// PubAck is in hand, the message is already in the stream's newest block file (nats-server
// writes in place before it acknowledges; only the fsync waits). And concurrent webhooks share
// fsyncs: 200 waiting together take far fewer rounds than 200.
func TestGroupSyncAfterPubAck(t *testing.T) {
	store := t.TempDir()
	ns := eventstest.MustRunNATSAt(t, "127.0.0.1:0", store)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	ctx := context.Background()
	pub := events.NewPublisher(js)
	dir, err := events.StreamMsgsDir(store)
	if err != nil {
		t.Fatal(err)
	}
	g, err := events.NewGroupSync(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for i := range 3 {
		id := fmt.Sprintf("evt_written_in_place_%d", i)
		if _, err := pub.Publish(ctx, &events.Webhook{Body: []byte(`{"id":"` + id + `"}`), EventID: id, EventType: "payment_captured"}); err != nil {
			t.Fatal(err)
		}
		blocks, _ := filepath.Glob(filepath.Join(dir, "*.blk"))
		var found bool
		for _, b := range blocks {
			data, err := os.ReadFile(b)
			if err != nil {
				t.Fatal(err)
			}
			found = found || bytes.Contains(data, []byte(id))
		}
		if !found {
			t.Fatalf("%s acknowledged but not in any block file: GroupSync's fsync would not cover it", id)
		}
		if err := g.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := g.Rounds()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("evt_group_%d", i)
			if _, err := pub.Publish(ctx, &events.Webhook{Body: []byte(`{"id":"` + id + `"}`), EventID: id, EventType: "payment_captured"}); err != nil {
				errs <- err
				return
			}
			errs <- g.Sync(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if rounds := g.Rounds() - before; rounds >= 200 || rounds < 1 {
		t.Fatalf("200 concurrent webhooks took %d fsync rounds", rounds)
	} else {
		t.Logf("200 concurrent webhooks: %d fsync rounds", rounds)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(ctx); err != events.ErrSyncClosed {
		t.Fatalf("Sync after Close: %v", err)
	}
}
