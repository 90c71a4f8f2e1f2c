package events_test

import (
	"context"
	"testing"
	"time"

	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
)

// TestLeaseOneHolderAndTakeOver: one holder at a time; a holder that stops renewing loses the
// lease after its TTL (and knows it: Held turns false on its own clock), and another takes it; a
// holder that releases hands it over at once.
func TestLeaseOneHolderAndTakeOver(t *testing.T) {
	ctx := context.Background()
	_, js := eventstest.MustConnect(t, eventstest.MustRunNATS(t))
	ttl := time.Second
	kv, err := events.EnsureLeases(ctx, js, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureLeases(ctx, js, ttl); err != nil { // a second reconciler opens the same bucket
		t.Fatal(err)
	}
	now := time.Now()
	a, b := events.NewLease(kv, events.SweepLease, "a", ttl), events.NewLease(kv, events.SweepLease, "b", ttl)
	a.Now = func() time.Time { return now }
	if held, err := a.Try(ctx); !held || err != nil {
		t.Fatalf("a: %v %v", held, err)
	}
	if held, err := b.Try(ctx); held || err != nil {
		t.Fatalf("b took a held lease: %v %v", held, err)
	}
	if holder, err := b.Holder(ctx); holder != "a" || err != nil {
		t.Fatalf("holder %q %v", holder, err)
	}
	if held, err := a.Try(ctx); !held || err != nil { // renewal
		t.Fatalf("a renews: %v %v", held, err)
	}
	// a stops renewing (it hangs, or dies): on its own clock it holds nothing past the TTL...
	now = now.Add(ttl)
	if a.Held() {
		t.Fatal("a still believes it holds the lease a TTL after its last renewal")
	}
	// ...and in the bucket the key expires, so b takes it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, err := b.Try(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never took the expired lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if held, _ := a.Try(ctx); held {
		t.Fatal("a renewed a lease b holds")
	}
	// b releases: a takes it at its next try, without waiting for the TTL.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if held, err := a.Try(ctx); !held || err != nil {
		t.Fatalf("a after b's release: %v %v", held, err)
	}
}
