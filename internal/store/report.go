package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"knetrecon/internal/payment"
)

// The queries finance reports need (internal/report). They read; they never write.

// PostingLine is one posting as finance reads it: the money movement, its payment's reference,
// when it happened at Checkout.com and when the ledger learned it.
type PostingLine struct {
	ActionID  string `json:"action_id"`
	PaymentID string `json:"payment_id"`
	Reference string `json:"reference,omitempty"`
	// Kind is capture or refund; State posted, or held (a refund no capture covers yet).
	Kind     string `json:"kind"`
	State    string `json:"state"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	// Origin is webhook, or api (learned by the sweep); EventID the event that brought it first.
	Origin  string `json:"origin"`
	EventID string `json:"event_id"`
	// OccurredAt is Checkout.com's time of the action (the ledger's, when the event had none).
	OccurredAt time.Time `json:"occurred_at"`
	// LearnedAt is when the ledger first recorded it.
	LearnedAt time.Time `json:"learned_at"`
}

// PostingLines returns the postings that occurred in [from, to), and apart from them those the
// ledger learned in [from, to) that had occurred before from: money a report of an earlier period
// lacked (a late webhook, a capture or refund the sweep recovered). Both oldest first.
func (l *Ledger) PostingLines(ctx context.Context, from, to time.Time) (inPeriod, late []PostingLine, err error) {
	f, t := fmtTime(from), fmtTime(to)
	rows, err := l.r.QueryContext(ctx, `SELECT p.action_id, p.payment_id, y.reference, p.kind, p.state, p.amount,
			p.currency, p.origin, p.event_id, COALESCE(p.occurred_at, p.created_at) AS at, p.created_at
		FROM postings p JOIN payments y ON y.id = p.payment_id
		WHERE (COALESCE(p.occurred_at, p.created_at) >= ? AND COALESCE(p.occurred_at, p.created_at) < ?)
			OR (p.created_at >= ? AND p.created_at < ? AND COALESCE(p.occurred_at, p.created_at) < ?)
		ORDER BY at, p.action_id`, f, t, f, t, f)
	if err != nil {
		return nil, nil, fmt.Errorf("posting lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pl PostingLine
		var at, learned sql.NullString
		if err := rows.Scan(&pl.ActionID, &pl.PaymentID, &pl.Reference, &pl.Kind, &pl.State, &pl.Amount,
			&pl.Currency, &pl.Origin, &pl.EventID, &at, &learned); err != nil {
			return nil, nil, fmt.Errorf("posting lines: %w", err)
		}
		pl.OccurredAt, pl.LearnedAt = parseTime(at), parseTime(learned)
		if pl.OccurredAt.Before(from) {
			late = append(late, pl)
		} else {
			inPeriod = append(inPeriod, pl)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("posting lines: %w", err)
	}
	return inPeriod, late, nil
}

// StatusCount is how many payments of one currency are in one status, and the amount they state.
type StatusCount struct {
	Status   payment.Status `json:"status"`
	Currency string         `json:"currency"`
	Count    int64          `json:"count"`
	Amount   int64          `json:"amount"`
}

// PaymentsStarted counts the payments requested in [from, to) (first seen, when that is earlier)
// by where they stand now.
func (l *Ledger) PaymentsStarted(ctx context.Context, from, to time.Time) ([]StatusCount, error) {
	var out []StatusCount
	rows, err := l.r.QueryContext(ctx, `SELECT status, currency, COUNT(*), SUM(amount) FROM payments
		WHERE MIN(COALESCE(requested_at, first_seen_at), first_seen_at) >= ?
			AND MIN(COALESCE(requested_at, first_seen_at), first_seen_at) < ?
		GROUP BY status, currency ORDER BY status, currency`, fmtTime(from), fmtTime(to))
	if err != nil {
		return nil, fmt.Errorf("payments started: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c StatusCount
		var status string
		if err := rows.Scan(&status, &c.Currency, &c.Count, &c.Amount); err != nil {
			return nil, fmt.Errorf("payments started: %w", err)
		}
		c.Status = payment.Status(status)
		out = append(out, c)
	}
	return out, rows.Err()
}

// DiscrepanciesDetected counts the discrepancies recorded in [from, to), by kind.
func (l *Ledger) DiscrepanciesDetected(ctx context.Context, from, to time.Time) (map[payment.Kind]int64, error) {
	rows, err := l.r.QueryContext(ctx, `SELECT kind, COUNT(*) FROM discrepancies
		WHERE detected_at >= ? AND detected_at < ? GROUP BY kind`, fmtTime(from), fmtTime(to))
	if err != nil {
		return nil, fmt.Errorf("discrepancies detected: %w", err)
	}
	defer rows.Close()
	out := map[payment.Kind]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("discrepancies detected: %w", err)
		}
		out[payment.Kind(k)] = n
	}
	return out, rows.Err()
}

// OpenPayments counts the payments not final, which still owe a webhook.
func (l *Ledger) OpenPayments(ctx context.Context) (int64, error) {
	var n int64
	if err := l.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM payments INDEXED BY payments_due WHERE final = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("open payments: %w", err)
	}
	return n, nil
}
