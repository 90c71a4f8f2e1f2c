package store_test

import (
	"context"
	"testing"

	"knetrecon/internal/store/storetest"
)

// The writer syncs every commit (synchronous=FULL): the consumer acks a batch only after its
// commit, so the commit must survive a power cut. go-sqlite3's compiled default in WAL mode is
// NORMAL (synced only at checkpoints).
func TestLedgerCommitsAreSynced(t *testing.T) {
	l := storetest.MustOpenLedger(t)
	v, err := l.Synchronous(context.Background())
	if err != nil || v != 2 {
		t.Fatalf("PRAGMA synchronous = %d (%v), want 2 (FULL)", v, err)
	}
}
