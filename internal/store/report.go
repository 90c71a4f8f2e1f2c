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
	// CountedAt decides the report day it counts on: when it was posted (a refund released from
	// hold: its release), or its own time if that is later. Every posting counts on one day.
	CountedAt time.Time `json:"counted_at"`
	// BankFee and BankNet are what the acquiring bank's statement says of it, once a line of its
	// amount paid it: the commission kept and the net paid (negative for a refund); nil before,
	// or when the statement gives no commission.
	BankFee *int64 `json:"bank_fee,omitempty"`
	BankNet *int64 `json:"bank_net,omitempty"`
}

// countedAt is the SQL of PostingLine.CountedAt: the later of the posting's own time and the
// time it was posted (a held refund is posted when a capture covers it).
const countedAt = `MAX(COALESCE(p.occurred_at, p.created_at), COALESCE(p.posted_at, p.created_at))`

// PostingLines returns the postings that count on the period [from, to), in the order they count:
// the posted ones whose CountedAt falls in it (a refund released from hold counts on its release
// day, a capture learned late on the day it was learned), and, as "held", the refunds that
// arrived in it with no capture to cover them (whether released since or not). late is the part
// of them that Checkout.com made before the period (money the earlier reports could not know).
// Summed over consecutive periods, their net is the ledger's: each posting counts exactly once.
func (l *Ledger) PostingLines(ctx context.Context, from, to time.Time) (inPeriod, late []PostingLine, err error) {
	f, t := fmtTime(from), fmtTime(to)
	// Two parts: the postings that count in the period, and the refunds that arrived in it with no
	// capture to cover them (held then; released later, they count on their release day). A
	// refund held and released in the same period appears in both.
	rows, err := l.r.QueryContext(ctx, `SELECT * FROM (
		SELECT p.action_id, p.payment_id, y.reference, p.kind, 'posted' AS state, p.amount,
			p.currency, p.origin, p.event_id, COALESCE(p.occurred_at, p.created_at) AS at, p.created_at,
			`+countedAt+` AS counted, m.fee, m.net
		FROM postings p JOIN payments y ON y.id = p.payment_id LEFT JOIN settlement_matches m ON m.action_id = p.action_id AND m.ok = 1
		WHERE p.state = 'posted' AND `+countedAt+` >= ? AND `+countedAt+` < ?
		UNION ALL
		SELECT p.action_id, p.payment_id, y.reference, p.kind, 'held', p.amount,
			p.currency, p.origin, p.event_id, COALESCE(p.occurred_at, p.created_at), p.created_at, p.created_at, NULL, NULL
		FROM postings p JOIN payments y ON y.id = p.payment_id
		WHERE (p.posted_at IS NULL OR p.posted_at > p.created_at) AND p.created_at >= ? AND p.created_at < ?
	) ORDER BY counted, action_id, state DESC`, f, t, f, t)
	if err != nil {
		return nil, nil, fmt.Errorf("posting lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pl PostingLine
		var at, learned, counted sql.NullString
		var fee, net sql.NullInt64
		if err := rows.Scan(&pl.ActionID, &pl.PaymentID, &pl.Reference, &pl.Kind, &pl.State, &pl.Amount,
			&pl.Currency, &pl.Origin, &pl.EventID, &at, &learned, &counted, &fee, &net); err != nil {
			return nil, nil, fmt.Errorf("posting lines: %w", err)
		}
		if fee.Valid {
			pl.BankFee = &fee.Int64
		}
		if net.Valid {
			pl.BankNet = &net.Int64
		}
		pl.OccurredAt, pl.LearnedAt, pl.CountedAt = parseTime(at), parseTime(learned), parseTime(counted)
		inPeriod = append(inPeriod, pl)
		if pl.State == "posted" && pl.OccurredAt.Before(from) {
			late = append(late, pl)
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

// PaymentRow is one payment of a range report: where it stands, its money, KNET's ids and how
// much of it the bank's statements have shown paid.
type PaymentRow struct {
	ID        string `json:"payment_id"`
	Reference string `json:"reference"`
	Status    string `json:"status"`
	Currency  string `json:"currency"`
	Amount    int64  `json:"amount"`
	Captured  int64  `json:"captured"`
	Refunded  int64  `json:"refunded"`
	// RefundKind is "", "partial" or "full".
	RefundKind        string    `json:"refund_kind"`
	KNETPaymentID     string    `json:"knet_payment_id"`
	KNETTransactionID string    `json:"knet_transaction_id"`
	BankReference     string    `json:"bank_reference"`
	PostDate          string    `json:"post_date"`
	FirstSeenAt       time.Time `json:"first_seen_at"`
	// Postings counts its posted captures and refunds; Settled those a bank statement paid;
	// Settlement sums it up: "settled", "partly settled", "not yet", or "" with no money.
	Postings   int    `json:"postings"`
	Settled    int    `json:"settled"`
	Settlement string `json:"settlement"`
}

// PaymentRows returns, by first seen, the payments first seen in [from, to) or with a posting
// that counts in it.
func (l *Ledger) PaymentRows(ctx context.Context, from, to time.Time) ([]PaymentRow, error) {
	f, t := fmtTime(from), fmtTime(to)
	rows, err := l.r.QueryContext(ctx, `SELECT y.id, y.reference, y.status, y.currency, y.amount, y.captured, y.refunded,
			COALESCE(k.knet_payment_id, ''), COALESCE(k.knet_transaction_id, ''), COALESCE(k.bank_reference, ''),
			COALESCE(k.post_date, ''), y.first_seen_at,
			(SELECT COUNT(*) FROM postings p WHERE p.payment_id = y.id AND p.state = 'posted'),
			(SELECT COUNT(*) FROM postings p JOIN settlement_matches m ON m.action_id = p.action_id WHERE p.payment_id = y.id AND m.ok = 1)
		FROM payments y LEFT JOIN knet_ids k ON k.payment_id = y.id
		WHERE (y.first_seen_at >= ?1 AND y.first_seen_at < ?2)
			OR y.id IN (SELECT p.payment_id FROM postings p WHERE p.state = 'posted' AND `+countedAt+` >= ?1 AND `+countedAt+` < ?2)
		ORDER BY y.first_seen_at, y.id`, f, t)
	if err != nil {
		return nil, fmt.Errorf("payment rows: %w", err)
	}
	defer rows.Close()
	var out []PaymentRow
	for rows.Next() {
		var r PaymentRow
		var seen string
		if err := rows.Scan(&r.ID, &r.Reference, &r.Status, &r.Currency, &r.Amount, &r.Captured, &r.Refunded,
			&r.KNETPaymentID, &r.KNETTransactionID, &r.BankReference, &r.PostDate, &seen, &r.Postings, &r.Settled); err != nil {
			return nil, fmt.Errorf("payment rows: %w", err)
		}
		r.FirstSeenAt, _ = time.Parse(timeFormat, seen)
		switch {
		case r.Postings == 0:
		case r.Settled >= r.Postings:
			r.Settlement = "settled"
		case r.Settled > 0:
			r.Settlement = "partly settled"
		default:
			r.Settlement = "not yet"
		}
		switch {
		case r.Refunded > 0 && r.Refunded >= r.Captured:
			r.RefundKind = "full"
		case r.Refunded > 0:
			r.RefundKind = "partial"
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// NetBucket is the net of the postings that count in one UTC minute, in one currency: captures
// less refunds, in minor units.
type NetBucket struct {
	Minute   time.Time
	Currency string
	Net      int64
	Count    int64
}

// PostedNet sums the posted postings that count in [from, to) by UTC minute and currency, as
// PostingLines counts them (held refunds are left out): the desk's chart, without loading every
// line. Minutes let the caller bucket into days of any time zone.
func (l *Ledger) PostedNet(ctx context.Context, from, to time.Time) ([]NetBucket, error) {
	rows, err := l.r.QueryContext(ctx, `SELECT substr(`+countedAt+`, 1, 16) AS minute, p.currency,
			SUM(CASE p.kind WHEN 'capture' THEN p.amount ELSE -p.amount END), COUNT(*)
		FROM postings p
		WHERE p.state = 'posted' AND `+countedAt+` >= ? AND `+countedAt+` < ?
		GROUP BY minute, p.currency ORDER BY minute`, fmtTime(from), fmtTime(to))
	if err != nil {
		return nil, fmt.Errorf("posted net: %w", err)
	}
	defer rows.Close()
	var out []NetBucket
	for rows.Next() {
		var b NetBucket
		var minute string
		if err := rows.Scan(&minute, &b.Currency, &b.Net, &b.Count); err != nil {
			return nil, fmt.Errorf("posted net: %w", err)
		}
		if b.Minute, err = time.Parse("2006-01-02T15:04", minute); err != nil {
			return nil, fmt.Errorf("posted net: minute %q: %w", minute, err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
