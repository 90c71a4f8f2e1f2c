// Package storetest opens real SQLite ledgers for tests.
package storetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"knetrecon/internal/store"
)

// MustOpenLedger opens a fresh ledger file in tb's temporary directory. When the test ends it
// checks that the journal balances (failing the test if not) and closes the ledger.
func MustOpenLedger(tb testing.TB) *store.Ledger {
	tb.Helper()
	return MustOpenLedgerAt(tb, filepath.Join(tb.TempDir(), "ledger.db"))
}

// MustOpenLedgerAt opens the ledger at path, with the same checks as MustOpenLedger.
func MustOpenLedgerAt(tb testing.TB, path string) *store.Ledger {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := store.Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Verify(context.Background()); err != nil {
			tb.Errorf("after the test: %v", err)
		}
		if err := l.Close(); err != nil {
			tb.Errorf("close ledger: %v", err)
		}
	})
	return l
}
