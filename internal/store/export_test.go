package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

// ExplainDue returns SQLite's plan for the sweep's due query (verify: the verification list).
func ExplainDue(tb testing.TB, l *Ledger, verify bool) string {
	tb.Helper()
	rows, err := l.r.QueryxContext(context.Background(), `EXPLAIN QUERY PLAN `+dueQuery(verify), fmtTime(time.Now()), "", "", 10)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			tb.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}
