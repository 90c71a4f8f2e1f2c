package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"knetrecon/internal/store"
)

// BenchmarkDuePayments measures the sweep's query on a ledger of 1M payments, 5% of them open,
// with and without the payments_due index (dropped in the second case, as a control).
//
//	go test -run '^$' -bench DuePayments ./internal/store/
func BenchmarkDuePayments(b *testing.B) {
	const rows = 1_000_000
	path := filepath.Join(b.TempDir(), "ledger.db")
	ctx := context.Background()
	l, err := store.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	// Fill with plain SQL: a recursive series, one statement.
	db, err := sql.Open("sqlite3", store.DSN(path, false))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO payments (id, status, amount, currency, seen, captured, final, first_seen_at, next_check_at, updated_at)
		SELECT printf('pay_%012d', i), CASE WHEN i % 20 = 0 THEN 'Pending' ELSE 'Captured' END, 1000, 'KWD', 'pending',
		       CASE WHEN i % 20 = 0 THEN 0 ELSE 1000 END, CASE WHEN i % 20 = 0 THEN 0 ELSE 1 END,
		       strftime('%Y-%m-%dT%H:%M:%S.000000000Z', '2026-01-01', '+' || (i / 10) || ' seconds'),
		       strftime('%Y-%m-%dT%H:%M:%S.000000000Z', '2026-01-01', '+' || (i / 10) || ' seconds'),
		       '2026-01-01T00:00:00.000000000Z'
		FROM n`, rows); err != nil {
		b.Fatal(err)
	}
	due := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	run := func(b *testing.B) {
		var cur store.Cursor
		for i := 0; i < b.N; i++ {
			page, next, err := l.DuePayments(ctx, store.DueQuery{Due: due, After: cur, Limit: 100})
			if err != nil {
				b.Fatal(err)
			}
			if len(page) != 100 {
				cur = store.Cursor{}
				continue
			}
			cur = next
		}
	}
	b.Run("indexed-1M", run)
	l.Close()
	if _, err := db.Exec(`DROP INDEX payments_due; CREATE INDEX payments_due ON payments (updated_at)`); err != nil {
		b.Fatal(err)
	}
	// Same name, useless columns: INDEXED BY still names it, the planner must scan.
	if l, err = store.Open(ctx, path); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.Run("unindexed-1M", run)
}
