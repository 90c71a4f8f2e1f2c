package store

import (
	"context"
	"fmt"
	"strings"
)

// Event rows and journal lines are the writes of a batch that nothing in the batch reads back
// (its event lookups go through the cache Prefetch filled). In the optimistic run of a batch they
// are therefore gathered and written at the end, many rows per INSERT, which saves a statement's
// fixed cost (round trips through database/sql and cgo) per row. A failure there cannot be
// pinned on one event, so it ends the optimistic run like any other (see Update).
const rowsPerInsert = 64

const (
	eventColumns   = `(id, payment_id, type, origin, action_id, amount, currency, occurred_at, received_at, applied_at, outcome, status_before, status_after, stream_seq, body_hash, body)`
	eventValues    = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	journalColumns = `(action_id, account, debit, credit, currency)`
	journalValues  = `(?, ?, ?, 0, ?), (?, ?, 0, ?, ?)` // one posting: its debit and credit lines
)

func multiInsert(table, columns, values string, n int) string {
	return "INSERT INTO " + table + " " + columns + " VALUES " + values + strings.Repeat(", "+values, n-1)
}

func init() {
	statements["insertEvents"] = multiInsert("events", eventColumns, eventValues, rowsPerInsert)
	statements["journals"] = multiInsert("journal", journalColumns, journalValues, rowsPerInsert)
}

// pendingRows are the rows gathered for the end of the batch: args for each table's INSERT.
type pendingRows struct {
	events   [][]any
	journals [][]any
}

// deferRows reports whether t gathers rows instead of writing them now.
func (t *Tx) deferRows() bool { return t.cache != nil }

// flushRows writes the gathered rows, rowsPerInsert per statement.
func (t *Tx) flushRows(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx) // like Apply: a batch in hand is finished, not torn
	if err := t.flushTable(ctx, "insertEvents", "events", eventColumns, eventValues, t.pending.events); err != nil {
		return fmt.Errorf("store events: %w", err)
	}
	if err := t.flushTable(ctx, "journals", "journal", journalColumns, journalValues, t.pending.journals); err != nil {
		return fmt.Errorf("store journal lines: %w", err)
	}
	t.pending = pendingRows{}
	return nil
}

func (t *Tx) flushTable(ctx context.Context, full, table, columns, values string, rows [][]any) error {
	for len(rows) > 0 {
		n := min(rowsPerInsert, len(rows))
		args := make([]any, 0, n*len(rows[0]))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		var err error
		if n == rowsPerInsert {
			_, err = t.stmt(full).ExecContext(ctx, args...)
		} else {
			_, err = t.tx.ExecContext(ctx, multiInsert(table, columns, values, n), args...)
		}
		if err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}
