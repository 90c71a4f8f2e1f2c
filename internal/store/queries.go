package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"knetrecon/internal/payment"
)

// Payment is the ledger's view of one payment. The JSON names are an interface finance scripts
// use (reconciler payment --json): keep them stable.
type Payment struct {
	ID             string         `json:"id"`
	Status         payment.Status `json:"status"`
	ProviderStatus string         `json:"provider_status,omitempty"`
	Amount         int64          `json:"amount"`
	Currency       string         `json:"currency"`
	Reference      string         `json:"reference,omitempty"`
	Customer       string         `json:"customer,omitempty"`
	Method         string         `json:"method,omitempty"`
	Seen           string         `json:"seen"`
	Captured       int64          `json:"captured"`
	Refunded       int64          `json:"refunded"`
	Held           int64          `json:"held_refunds"`
	Final          bool           `json:"final"`
	RequestedAt    *time.Time     `json:"requested_at,omitempty"`
	FirstSeenAt    time.Time      `json:"first_seen_at"`
	LastEventAt    *time.Time     `json:"last_event_at,omitempty"`
	LastCheckedAt  *time.Time     `json:"last_checked_at,omitempty"`
	NextCheckAt    time.Time      `json:"next_check_at"`
	// VerifyAt is when the sweep verifies this final payment next (see KNETRECON_VERIFY_AFTER).
	VerifyAt  *time.Time `json:"verify_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// PaymentDetail is a payment with its journal, its full event history, its discrepancies and the
// sweep's checks: the whole story of one payment.
type PaymentDetail struct {
	Payment
	Postings      []Posting     `json:"postings"`
	Events        []EventRecord `json:"events"`
	Discrepancies []Discrepancy `json:"discrepancies"`
	// Checks are the sweep's questions to Checkout.com about it, newest first.
	Checks []CheckRecord `json:"checks"`
	// KNET are KNET's ids of the payment (the bank statement's keys), once learned.
	KNET *KNETIDs `json:"knet,omitempty"`
}

// Posting is one money movement, keyed by action id, with its journal lines.
type Posting struct {
	ActionID   string        `json:"action_id"`
	Kind       string        `json:"kind"`
	Amount     int64         `json:"amount"`
	Currency   string        `json:"currency"`
	State      string        `json:"state"`
	EventID    string        `json:"event_id"`
	Origin     string        `json:"origin"`
	OccurredAt *time.Time    `json:"occurred_at,omitempty"`
	PostedAt   *time.Time    `json:"posted_at,omitempty"`
	Lines      []JournalLine `json:"lines"`
	// Settlement is the bank statement line that paid it (reconciler settle); nil until one did.
	Settlement *SettledBy `json:"settlement,omitempty"`
}

// SettledBy is where a posting was found on the acquiring bank's statement.
type SettledBy struct {
	RunID           int64     `json:"run_id"`
	File            string    `json:"file"`
	Line            int       `json:"line"`
	StatementAmount int64     `json:"statement_amount"`
	MatchedAt       time.Time `json:"matched_at"`
	// Fee is the bank's commission on the line and Net what it pays for it (negative for a
	// refund), when the statement says; Gross is the line's amount, signed like Net.
	Gross int64  `json:"gross"`
	Fee   *int64 `json:"fee,omitempty"`
	Net   *int64 `json:"net,omitempty"`
	// Paid says the line had the posting's amount; false: it is an amount_mismatch.
	Paid bool `json:"paid"`
}

// JournalLine is one side of a posting.
type JournalLine struct {
	Account string `json:"account"`
	Debit   int64  `json:"debit"`
	Credit  int64  `json:"credit"`
}

// EventRecord is one event of a payment's history and how it was applied.
type EventRecord struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	Origin       string     `json:"origin"`
	ActionID     string     `json:"action_id,omitempty"`
	Amount       int64      `json:"amount"`
	Currency     string     `json:"currency,omitempty"`
	OccurredAt   *time.Time `json:"occurred_at,omitempty"`
	ReceivedAt   time.Time  `json:"received_at"`
	AppliedAt    time.Time  `json:"applied_at"`
	Outcome      string     `json:"outcome"`
	StatusBefore string     `json:"status_before"`
	StatusAfter  string     `json:"status_after"`
	StreamSeq    *int64     `json:"stream_seq,omitempty"`
	Duplicates   int        `json:"duplicates"`
	BodyHash     string     `json:"body_hash"`
}

// Discrepancy is something an operator must look at.
type Discrepancy struct {
	ID         int64           `json:"id"`
	PaymentID  string          `json:"payment_id"`
	Kind       payment.Kind    `json:"kind"`
	Subject    string          `json:"subject,omitempty"`
	Details    json.RawMessage `json:"details"`
	EventID    string          `json:"event_id,omitempty"`
	Origin     string          `json:"origin,omitempty"`
	DetectedAt time.Time       `json:"detected_at"`
	ResolvedAt *time.Time      `json:"resolved_at,omitempty"`
	Resolution string          `json:"resolution,omitempty"`
	// ResolvedBy is the operator who resolved it by hand; empty when the reconciler did.
	ResolvedBy string `json:"resolved_by,omitempty"`
	// Reopened counts the times a later check found it true again after a resolution.
	Reopened int `json:"reopened,omitempty"`
	// History is its life, oldest first: opened, every resolution and reopening, and its
	// current resolution (filled in by Discrepancies and Payment).
	History []DiscrepancyEvent `json:"history,omitempty"`
}

const paymentColumns = `id, status, provider_status, amount, currency, reference, customer, method, seen,
	captured, refunded, held, final, requested_at, first_seen_at, last_event_at, last_checked_at,
	next_check_at, verify_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanPayment(s scanner) (Payment, error) {
	var p Payment
	var final int
	var status string
	var req, first, last, checked, next, verify, updated sql.NullString
	err := s.Scan(&p.ID, &status, &p.ProviderStatus, &p.Amount, &p.Currency, &p.Reference, &p.Customer,
		&p.Method, &p.Seen, &p.Captured, &p.Refunded, &p.Held, &final, &req, &first, &last, &checked, &next, &verify, &updated)
	if err != nil {
		return p, err
	}
	p.Status = payment.Status(status)
	p.Final = final == 1
	p.RequestedAt, p.LastEventAt, p.LastCheckedAt, p.VerifyAt = timePtr(req), timePtr(last), timePtr(checked), timePtr(verify)
	p.FirstSeenAt, p.NextCheckAt, p.UpdatedAt = parseTime(first), parseTime(next), parseTime(updated)
	return p, nil
}

func timePtr(s sql.NullString) *time.Time {
	t := parseTime(s)
	if t.IsZero() {
		return nil
	}
	return &t
}

// Payment returns one payment with its postings, events and discrepancies, or ErrNotFound.
func (l *Ledger) Payment(ctx context.Context, id string) (*PaymentDetail, error) {
	p, err := scanPayment(l.r.QueryRowxContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("payment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("payment %s: %w", id, err)
	}
	d := &PaymentDetail{Payment: p, Postings: []Posting{}, Events: []EventRecord{}, Discrepancies: []Discrepancy{}}
	if d.Postings, err = l.postings(ctx, id); err != nil {
		return nil, err
	}
	if d.Events, err = l.events(ctx, id); err != nil {
		return nil, err
	}
	if d.Discrepancies, err = l.Discrepancies(ctx, DiscrepancyFilter{PaymentID: id, All: true}); err != nil {
		return nil, err
	}
	if d.Checks, err = l.Checks(ctx, id, 0); err != nil {
		return nil, err
	}
	if d.KNET, err = l.KNET(ctx, id); err != nil {
		return nil, err
	}
	return d, nil
}

func (l *Ledger) postings(ctx context.Context, paymentID string) ([]Posting, error) {
	rows, err := l.r.QueryxContext(ctx, `SELECT p.action_id, p.kind, p.amount, p.currency, p.state, p.event_id, p.origin,
		p.occurred_at, p.posted_at, m.run_id, COALESCE(r.file, ''), m.line, m.statement_amount, m.matched_at, m.fee, m.net, m.ok
		FROM postings p LEFT JOIN settlement_matches m ON m.action_id = p.action_id LEFT JOIN settlement_runs r ON r.id = m.run_id
		WHERE p.payment_id = ? ORDER BY p.occurred_at, p.action_id`, paymentID)
	if err != nil {
		return nil, fmt.Errorf("postings of %s: %w", paymentID, err)
	}
	defer rows.Close()
	out := []Posting{}
	for rows.Next() {
		var p Posting
		var occ, posted, matched sql.NullString
		var run, line, stAmount, fee, net, ok sql.NullInt64
		var file string
		if err := rows.Scan(&p.ActionID, &p.Kind, &p.Amount, &p.Currency, &p.State, &p.EventID, &p.Origin, &occ, &posted,
			&run, &file, &line, &stAmount, &matched, &fee, &net, &ok); err != nil {
			return nil, err
		}
		p.OccurredAt, p.PostedAt = timePtr(occ), timePtr(posted)
		if run.Valid {
			sb := &SettledBy{RunID: run.Int64, File: file, Line: int(line.Int64), StatementAmount: stAmount.Int64, MatchedAt: parseTime(matched),
				Gross: stAmount.Int64, Paid: ok.Int64 == 1}
			if p.Kind == "refund" {
				sb.Gross = -sb.Gross
			}
			if fee.Valid {
				sb.Fee = &fee.Int64
			}
			if net.Valid {
				sb.Net = &net.Int64
			}
			p.Settlement = sb
		}
		p.Lines = []JournalLine{}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := l.r.SelectContext(ctx, &out[i].Lines, `SELECT account, debit, credit FROM journal
			WHERE action_id = ? ORDER BY debit DESC, account`, out[i].ActionID); err != nil {
			return nil, fmt.Errorf("journal of %s: %w", out[i].ActionID, err)
		}
	}
	return out, nil
}

func (l *Ledger) events(ctx context.Context, paymentID string) ([]EventRecord, error) {
	rows, err := l.r.QueryxContext(ctx, `SELECT id, type, origin, action_id, amount, currency, occurred_at,
		received_at, applied_at, outcome, status_before, status_after, stream_seq, duplicates, body_hash
		FROM events WHERE payment_id = ? ORDER BY applied_at, rowid`, paymentID)
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", paymentID, err)
	}
	defer rows.Close()
	out := []EventRecord{}
	for rows.Next() {
		var e EventRecord
		var occ, rec, app sql.NullString
		var seq sql.NullInt64
		if err := rows.Scan(&e.ID, &e.Type, &e.Origin, &e.ActionID, &e.Amount, &e.Currency, &occ, &rec, &app,
			&e.Outcome, &e.StatusBefore, &e.StatusAfter, &seq, &e.Duplicates, &e.BodyHash); err != nil {
			return nil, err
		}
		e.OccurredAt, e.ReceivedAt, e.AppliedAt = timePtr(occ), parseTime(rec), parseTime(app)
		if seq.Valid {
			e.StreamSeq = &seq.Int64
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// DiscrepancyFilter selects discrepancies. The zero value lists the open ones (by the one rule:
// not resolved, and a stuck mark only while its payment is not final).
type DiscrepancyFilter struct {
	PaymentID string
	Kind      payment.Kind
	// All includes resolved ones.
	All   bool
	Limit int
}

// Discrepancies lists discrepancies, oldest first.
func (l *Ledger) Discrepancies(ctx context.Context, f DiscrepancyFilter) ([]Discrepancy, error) {
	var where []string
	var args []any
	if f.PaymentID != "" {
		where, args = append(where, "payment_id = ?"), append(args, f.PaymentID)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(f.Kind))
	}
	if !f.All {
		where = append(where, openDiscrepancy)
	}
	q := `SELECT id, payment_id, kind, subject, details, event_id, origin, detected_at, resolved_at, resolution, resolved_by FROM discrepancies`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := l.r.QueryxContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("discrepancies: %w", err)
	}
	defer rows.Close()
	out := []Discrepancy{}
	for rows.Next() {
		var d Discrepancy
		var kind, details string
		var det, res sql.NullString
		if err := rows.Scan(&d.ID, &d.PaymentID, &kind, &d.Subject, &details, &d.EventID, &d.Origin, &det, &res, &d.Resolution, &d.ResolvedBy); err != nil {
			return nil, err
		}
		d.Kind, d.Details = payment.Kind(kind), json.RawMessage(details)
		d.DetectedAt, d.ResolvedAt = parseTime(det), timePtr(res)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("discrepancies: %w", err)
	}
	rows.Close()
	if err := l.withHistory(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// AddDiscrepancy records a discrepancy found outside Apply (the sweep: webhook_missing,
// amount_mismatch, unknown_at_provider). The same (payment, kind, subject) is recorded once, and
// stays resolved once resolved (see AddOrReopenDiscrepancy for what a later check may reopen); it
// reports whether a row was added.
func (t *Tx) AddDiscrepancy(ctx context.Context, paymentID string, kind payment.Kind, subject string, origin Origin, details map[string]any) (bool, error) {
	return t.discrepancy(ctx, Input{PaymentID: paymentID, Origin: origin}, kind, subject, details)
}

// ResolveDiscrepancy marks a discrepancy resolved by operator by, with a note.
func (t *Tx) ResolveDiscrepancy(ctx context.Context, id int64, by, resolution string) error {
	r, err := t.tx.ExecContext(ctx, `UPDATE discrepancies SET resolved_at = ?, resolution = ?, resolved_by = ? WHERE id = ? AND resolved_at IS NULL`,
		fmtTime(t.now), resolution, by, id)
	if err != nil {
		return fmt.Errorf("resolve discrepancy %d: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("resolve discrepancy %d: %w", id, ErrNotFound)
	}
	return nil
}

// DueQuery pages through the payments the sweep should ask Checkout.com about: open payments
// whose next_check_at (first the time we first saw it, then what the sweep set) is at or before
// Due or, with Verify, final payments whose verify_at is.
type DueQuery struct {
	Due time.Time
	// Verify selects final payments due for verification instead of open ones.
	Verify bool
	// After is the cursor: the last row of the previous page (zero for the first page).
	After Cursor
	Limit int
}

// Cursor marks a position in a due list.
type Cursor struct {
	// At is the row's next_check_at (verify_at with DueQuery.Verify).
	At time.Time
	ID string
}

// dueQuery is DuePayments' statement; each list is served by its partial index, so its cost
// does not grow with the payments outside it.
func dueQuery(verify bool) string {
	if verify {
		return `SELECT ` + paymentColumns + ` FROM payments INDEXED BY payments_verify
		WHERE verify_at IS NOT NULL AND verify_at <= ? AND (verify_at, id) > (?, ?)
		ORDER BY verify_at, id LIMIT ?`
	}
	return `SELECT ` + paymentColumns + ` FROM payments INDEXED BY payments_due
		WHERE final = 0 AND next_check_at <= ? AND (next_check_at, id) > (?, ?)
		ORDER BY next_check_at, id LIMIT ?`
}

// DuePayments returns up to q.Limit payments due, earliest first, and the cursor for the next
// page (zero when this was the last).
func (l *Ledger) DuePayments(ctx context.Context, q DueQuery) ([]Payment, Cursor, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	after := ""
	if !q.After.At.IsZero() {
		after = fmtTime(q.After.At)
	}
	rows, err := l.r.QueryxContext(ctx, dueQuery(q.Verify), fmtTime(q.Due), after, q.After.ID, q.Limit)
	if err != nil {
		return nil, Cursor{}, fmt.Errorf("due payments: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, Cursor{}, fmt.Errorf("due payments: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, Cursor{}, fmt.Errorf("due payments: %w", err)
	}
	var next Cursor
	if len(out) == q.Limit {
		last := out[len(out)-1]
		next = Cursor{At: last.NextCheckAt, ID: last.ID}
		if q.Verify {
			next.At = *last.VerifyAt
		}
	}
	return out, next, nil
}

// Check is one question the sweep asked Checkout.com about a payment.
type Check struct {
	PaymentID      string
	CheckedAt      time.Time
	ProviderStatus string
	// Outcome is the sweep's verdict: match, updated, not_found, error, ….
	Outcome string
	Details string
	// NextCheckAt is when to ask again; zero keeps the payment out of the due list until an
	// event moves it.
	NextCheckAt time.Time
	// Verify marks the verification of a final payment: NextCheckAt moves verify_at instead
	// (zero: no further verification), unless an event later than VerifiedFrom has been applied
	// since the check read the payment: that event restarted the count, and its schedule stands.
	Verify       bool
	VerifiedFrom time.Time
	// KeepSchedule records a check asked by an operator (reconciler reconcile): the sweep's and
	// the verification's schedules stay as they are.
	KeepSchedule bool
}

// RecordCheck logs a check and moves the payment's last_checked_at and next_check_at (verify_at
// for a verification).
func (t *Tx) RecordCheck(ctx context.Context, c Check) error {
	if c.KeepSchedule {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO payment_checks (payment_id, checked_at, provider_status, outcome, details)
			VALUES (?, ?, ?, ?, ?)`, c.PaymentID, fmtTime(c.CheckedAt), c.ProviderStatus, c.Outcome, c.Details); err != nil {
			return fmt.Errorf("record check of %s: %w", c.PaymentID, err)
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE payments SET last_checked_at = ? WHERE id = ?`, fmtTime(c.CheckedAt), c.PaymentID); err != nil {
			return fmt.Errorf("record check of %s: %w", c.PaymentID, err)
		}
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO payment_checks (payment_id, checked_at, provider_status, outcome, details)
		VALUES (?, ?, ?, ?, ?)`, c.PaymentID, fmtTime(c.CheckedAt), c.ProviderStatus, c.Outcome, c.Details); err != nil {
		return fmt.Errorf("record check of %s: %w", c.PaymentID, err)
	}
	var err error
	switch {
	case c.Verify:
		var next any
		if !c.NextCheckAt.IsZero() {
			next = fmtTime(c.NextCheckAt)
		}
		_, err = t.tx.ExecContext(ctx, `UPDATE payments SET last_checked_at = ?,
			verify_at = CASE WHEN last_event_at > ? THEN verify_at ELSE ? END WHERE id = ?`,
			fmtTime(c.CheckedAt), fmtTime(c.VerifiedFrom), next, c.PaymentID)
	default:
		next := c.NextCheckAt
		if next.IsZero() {
			next = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		_, err = t.tx.ExecContext(ctx, `UPDATE payments SET last_checked_at = ?, next_check_at = ? WHERE id = ?`,
			fmtTime(c.CheckedAt), fmtTime(next), c.PaymentID)
	}
	if err != nil {
		return fmt.Errorf("record check of %s: %w", c.PaymentID, err)
	}
	return nil
}

// Totals are ledger-wide sums, for health checks and tests.
type Totals struct {
	Payments, Events, Postings, Discrepancies, DeadLetters int64
}

// Totals counts the ledger's rows.
func (l *Ledger) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	err := l.r.QueryRowxContext(ctx, `SELECT (SELECT COUNT(*) FROM payments), (SELECT COUNT(*) FROM events),
		(SELECT COUNT(*) FROM postings), (SELECT COUNT(*) FROM discrepancies), (SELECT COUNT(*) FROM dead_letters)`).
		Scan(&t.Payments, &t.Events, &t.Postings, &t.Discrepancies, &t.DeadLetters)
	if err != nil {
		return t, fmt.Errorf("totals: %w", err)
	}
	return t, nil
}

// isOverflow reports SQLite's "integer overflow" from SUM: amounts past any sane bound, which
// Verify reports as a problem of the ledger instead of failing (and failing every report with it).
func isOverflow(err error) bool {
	return err != nil && strings.Contains(err.Error(), "integer overflow")
}

// ErrUnbalanced is returned by Verify when the journal does not balance.
var ErrUnbalanced = errors.New("ledger does not balance")

// Verify checks the ledger's invariants: every posting's debits equal its credits and its amount
// (held refunds have no lines), every payment's captured and refunded equal its posted postings,
// no payment refunded more than it captured. It returns ErrUnbalanced listing what is wrong.
func (l *Ledger) Verify(ctx context.Context) error {
	checks := []struct{ name, q string }{
		{"posting whose lines do not balance or do not match its amount", `SELECT p.action_id FROM postings p
			LEFT JOIN journal j ON j.action_id = p.action_id GROUP BY p.action_id
			HAVING COALESCE(SUM(j.debit), 0) != COALESCE(SUM(j.credit), 0)
			OR COALESCE(SUM(j.debit), 0) != CASE WHEN p.state = 'posted' THEN p.amount ELSE 0 END LIMIT 10`},
		{"journal lines without a posting", `SELECT j.action_id FROM journal j LEFT JOIN postings p
			ON p.action_id = j.action_id WHERE p.action_id IS NULL LIMIT 10`},
		{"payment whose totals differ from its postings", `SELECT y.id FROM payments y
			LEFT JOIN postings p ON p.payment_id = y.id GROUP BY y.id
			HAVING y.captured != COALESCE(SUM(CASE WHEN p.kind = 'capture' AND p.state = 'posted' THEN p.amount END), 0)
			OR y.refunded != COALESCE(SUM(CASE WHEN p.kind = 'refund' AND p.state = 'posted' THEN p.amount END), 0)
			OR y.held != COALESCE(SUM(CASE WHEN p.kind = 'refund' AND p.state = 'held' THEN p.amount END), 0)
			OR y.refunded > y.captured LIMIT 10`},
	}
	var problems []string
	for _, c := range checks {
		var ids []string
		if err := l.r.SelectContext(ctx, &ids, c.q); err != nil {
			if isOverflow(err) {
				problems = append(problems, c.name+": amounts too large to add up (an amount past Checkout.com's 9 digits, written before this release bounded them)")
				continue
			}
			return fmt.Errorf("verify: %w", err)
		}
		if len(ids) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %s", c.name, strings.Join(ids, ", ")))
		}
	}
	var d, c int64
	if err := l.r.QueryRowxContext(ctx, `SELECT COALESCE(SUM(debit), 0), COALESCE(SUM(credit), 0) FROM journal`).Scan(&d, &c); isOverflow(err) {
		problems = append(problems, "journal totals too large to add up")
	} else if err != nil {
		return fmt.Errorf("verify: %w", err)
	} else if d != c {
		problems = append(problems, fmt.Sprintf("journal debits %d != credits %d", d, c))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrUnbalanced, strings.Join(problems, "; "))
	}
	return nil
}

// PaymentsActive returns up to limit payments, by id after after, first seen or with an event in
// [from, to): the window of `reconciler reconcile`.
func (l *Ledger) PaymentsActive(ctx context.Context, from, to time.Time, after string, limit int) ([]Payment, error) {
	f, t := fmtTime(from), fmtTime(to)
	rows, err := l.r.QueryxContext(ctx, `SELECT `+paymentColumns+` FROM payments
		WHERE id > ? AND ((first_seen_at >= ? AND first_seen_at < ?) OR (last_event_at >= ? AND last_event_at < ?))
		ORDER BY id LIMIT ?`, after, f, t, f, t, limit)
	if err != nil {
		return nil, fmt.Errorf("payments active: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("payments active: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PaymentFilter selects payments for the desk's lists; every field is optional.
type PaymentFilter struct {
	Status payment.Status
	// From and To bound first_seen_at.
	From, To time.Time
	// Kind keeps payments with an open discrepancy of this kind.
	Kind payment.Kind
	// Before pages backwards: payments first seen before it (the last of the previous page).
	Before time.Time
	Limit  int
}

// ListPayments returns payments matching f, newest first, at most f.Limit (default 50). It reads
// through the status, first-seen and open-discrepancy indexes, so a page costs the same on a
// ledger of a million payments.
func (l *Ledger) ListPayments(ctx context.Context, f PaymentFilter) ([]Payment, error) {
	q := `SELECT ` + paymentColumns + ` FROM payments WHERE 1 = 1`
	var args []any
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if !f.From.IsZero() {
		q += ` AND first_seen_at >= ?`
		args = append(args, fmtTime(f.From))
	}
	if !f.To.IsZero() {
		q += ` AND first_seen_at < ?`
		args = append(args, fmtTime(f.To))
	}
	if !f.Before.IsZero() {
		q += ` AND first_seen_at < ?`
		args = append(args, fmtTime(f.Before))
	}
	if f.Kind != "" {
		q += ` AND id IN (SELECT payment_id FROM discrepancies WHERE kind = ? AND ` + openDiscrepancy + `)`
		args = append(args, string(f.Kind))
	}
	if f.Limit <= 0 {
		f.Limit = 50
	}
	q += ` ORDER BY first_seen_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := l.r.QueryxContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list payments: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("list payments: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// EventBody returns the exact body an event was applied from, or ErrNotFound.
func (l *Ledger) EventBody(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := l.r.GetContext(ctx, &b, `SELECT body FROM events WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return b, nil
}
