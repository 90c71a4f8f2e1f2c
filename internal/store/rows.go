package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// In the optimistic run of a batch, Apply reads payments, postings and events through the cache
// Prefetch filled and keeps it up to date; so the rows it writes need not reach SQLite until the
// end of the batch. They are gathered (a payment once, in its last state) and written then, many
// rows per INSERT, which saves a statement's fixed cost (round trips through database/sql and
// cgo) per row. The two reads that do go to the tables, a duplicate's counter and a payment's
// held refunds, flush first. A failure while flushing cannot be pinned on one event, so it ends
// the optimistic run like any other (see Update).

// insertSizes are the row counts with a statement prepared at open: a batch's rows go out in
// statements of 64 and then of the powers of two that make up the rest, never a statement
// parsed on the spot.
var insertSizes = []int{64, 32, 16, 8, 4, 2, 1}

const (
	paymentInsertColumns = `(id, status, provider_status, amount, currency, reference, customer, method, seen,
		captured, refunded, held, final, requested_at, first_seen_at, last_event_at, last_checked_at, next_check_at, verify_at, updated_at)`
	paymentValues = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	paymentUpsert = ` ON CONFLICT (id) DO UPDATE SET status = excluded.status, provider_status = excluded.provider_status,
		amount = excluded.amount, currency = excluded.currency, reference = excluded.reference,
		customer = excluded.customer, method = excluded.method, seen = excluded.seen,
		captured = excluded.captured, refunded = excluded.refunded, held = excluded.held,
		final = excluded.final, requested_at = excluded.requested_at, last_event_at = excluded.last_event_at,
		verify_at = excluded.verify_at, updated_at = excluded.updated_at`
	postingColumns = `(action_id, payment_id, kind, amount, currency, state, event_id, origin, occurred_at, created_at, posted_at)`
	postingValues  = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	eventColumns   = `(id, payment_id, type, origin, action_id, amount, currency, occurred_at, received_at, applied_at, outcome, status_before, status_after, stream_seq, body_hash, body)`
	eventValues    = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	journalColumns = `(action_id, account, debit, credit, currency)`
	journalValues  = `(?, ?, ?, 0, ?), (?, ?, 0, ?, ?)` // one posting: its debit and credit lines
)

func multiInsert(table, columns, values string, n int) string {
	return "INSERT INTO " + table + " " + columns + " VALUES " + values + strings.Repeat(", "+values, n-1)
}

func init() {
	for _, n := range insertSizes {
		statements[sized("upsertPayments", n)] = multiInsert("payments", paymentInsertColumns, paymentValues, n) + paymentUpsert
		statements[sized("insertPostings", n)] = multiInsert("postings", postingColumns, postingValues, n)
		statements[sized("insertEvents", n)] = multiInsert("events", eventColumns, eventValues, n)
		statements[sized("journals", n)] = multiInsert("journal", journalColumns, journalValues, n)
	}
}

func sized(key string, n int) string { return key + "/" + strconv.Itoa(n) }

// pendingRows are the rows gathered for the end of the batch: args for each table's INSERT.
type pendingRows struct {
	payments  [][]any
	paymentAt map[string]int // payment id → its index in payments
	postings  [][]any
	events    [][]any
	journals  [][]any
}

// payment gathers the row of payment id, replacing an earlier state of it.
func (p *pendingRows) payment(id string, args []any) {
	if i, ok := p.paymentAt[id]; ok {
		p.payments[i] = args
		return
	}
	if p.paymentAt == nil {
		p.paymentAt = map[string]int{}
	}
	p.paymentAt[id] = len(p.payments)
	p.payments = append(p.payments, args)
}

// deferRows reports whether t gathers rows instead of writing them now.
func (t *Tx) deferRows() bool { return t.cache != nil }

// flushRows writes the gathered rows, parents first, in statements of insertSizes rows.
func (t *Tx) flushRows(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx) // like Apply: a batch in hand is finished, not torn
	// Parents first: journal lines refer to their posting at once (the other references are
	// checked at commit).
	if err := t.flushTable(ctx, "upsertPayments", t.pending.payments); err != nil {
		return fmt.Errorf("store payments: %w", err)
	}
	if err := t.flushTable(ctx, "insertPostings", t.pending.postings); err != nil {
		return fmt.Errorf("store postings: %w", err)
	}
	if err := t.flushTable(ctx, "insertEvents", t.pending.events); err != nil {
		return fmt.Errorf("store events: %w", err)
	}
	if err := t.flushTable(ctx, "journals", t.pending.journals); err != nil {
		return fmt.Errorf("store journal lines: %w", err)
	}
	t.pending = pendingRows{}
	return nil
}

func (t *Tx) flushTable(ctx context.Context, key string, rows [][]any) error {
	for len(rows) > 0 {
		n := 1
		for _, size := range insertSizes {
			if size <= len(rows) {
				n = size
				break
			}
		}
		args := make([]any, 0, n*len(rows[0]))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		if _, err := t.stmt(sized(key, n)).ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// Barrier writes the rows gathered so far and stops reading through the batch's cache: what is
// applied next in the transaction reads the database. The consumer puts one before every fact,
// whose statements (a reschedule, a check, a settlement) write rows the cache would otherwise hide
// from the webhooks after it in the same batch; batches are cut differently on every replica, so
// that must never change what is written.
func (t *Tx) Barrier(ctx context.Context) error {
	if t.cache == nil {
		return nil
	}
	if err := t.flushRows(ctx); err != nil {
		return err
	}
	t.cache = nil
	return nil
}
