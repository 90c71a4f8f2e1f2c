package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"knetrecon/internal/payment"
)

// CheckStats summarises the sweep's past checks of one payment: how many, how many of the last
// ones failed in a row, and whether a void was already asked for.
type CheckStats struct {
	Attempts          int
	ConsecutiveErrors int
	VoidRequested     bool
	LastOutcome       string
}

// CheckStats reads the check history of a payment.
func (l *Ledger) CheckStats(ctx context.Context, paymentID string) (CheckStats, error) {
	var s CheckStats
	rows, err := l.r.QueryContext(ctx, `SELECT outcome, action FROM payment_checks WHERE payment_id = ? ORDER BY id DESC`, paymentID)
	if err != nil {
		return s, fmt.Errorf("check stats of %s: %w", paymentID, err)
	}
	defer rows.Close()
	trailing := true
	for rows.Next() {
		var outcome, action string
		if err := rows.Scan(&outcome, &action); err != nil {
			return s, fmt.Errorf("check stats of %s: %w", paymentID, err)
		}
		if s.Attempts == 0 {
			s.LastOutcome = outcome
		}
		s.Attempts++
		if trailing && (outcome == "error" || outcome == "void_failed") {
			s.ConsecutiveErrors++
		} else {
			trailing = false
		}
		if action == "void_requested" {
			s.VoidRequested = true
		}
	}
	return s, rows.Err()
}

// CheckRecord is one logged check, as `reconciler payment` and `reconciler stuck` show it.
type CheckRecord struct {
	CheckedAt      time.Time `json:"checked_at"`
	ProviderStatus string    `json:"provider_status,omitempty"`
	Outcome        string    `json:"outcome"`
	Action         string    `json:"action,omitempty"`
	LatencyMS      int64     `json:"latency_ms"`
	Error          string    `json:"error,omitempty"`
	Details        string    `json:"details,omitempty"`
}

// Checks returns the sweep's checks of a payment, newest first, at most limit (0: all).
func (l *Ledger) Checks(ctx context.Context, paymentID string, limit int) ([]CheckRecord, error) {
	q := `SELECT checked_at, provider_status, outcome, action, latency_ms, error, details FROM payment_checks
		WHERE payment_id = ? ORDER BY id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := l.r.QueryContext(ctx, q, paymentID)
	if err != nil {
		return nil, fmt.Errorf("checks of %s: %w", paymentID, err)
	}
	defer rows.Close()
	out := []CheckRecord{}
	for rows.Next() {
		var c CheckRecord
		var at sql.NullString
		if err := rows.Scan(&at, &c.ProviderStatus, &c.Outcome, &c.Action, &c.LatencyMS, &c.Error, &c.Details); err != nil {
			return nil, fmt.Errorf("checks of %s: %w", paymentID, err)
		}
		c.CheckedAt = parseTime(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// SweepCheck is a check with what the sweep did: the action taken, the API latency, the error.
type SweepCheck struct {
	Check
	Action  string
	Latency time.Duration
	Error   string
}

// RecordSweepCheck logs a check with its action, latency and error, and moves the payment's
// last_checked_at and next_check_at.
func (t *Tx) RecordSweepCheck(ctx context.Context, c SweepCheck) error {
	if err := t.RecordCheck(ctx, c.Check); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `UPDATE payment_checks SET action = ?, latency_ms = ?, error = ?
		WHERE id = (SELECT MAX(id) FROM payment_checks WHERE payment_id = ?)`,
		c.Action, c.Latency.Milliseconds(), c.Error, c.PaymentID)
	if err != nil {
		return fmt.Errorf("record check of %s: %w", c.PaymentID, err)
	}
	return nil
}

// Reschedule moves a payment's next_check_at without logging a check: the sweep uses it for a
// payment it met before its first check was due.
func (t *Tx) Reschedule(ctx context.Context, paymentID string, next time.Time) error {
	if _, err := t.tx.ExecContext(ctx, `UPDATE payments SET next_check_at = ? WHERE id = ?`, fmtTime(next), paymentID); err != nil {
		return fmt.Errorf("reschedule %s: %w", paymentID, err)
	}
	return nil
}

// OpenSince returns up to limit open (non-final) payments whose age base — the earlier of
// requested_at and first_seen_at — is before cutoff, oldest first.
func (l *Ledger) OpenSince(ctx context.Context, cutoff time.Time, limit int) ([]Payment, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := l.r.QueryxContext(ctx, `SELECT `+paymentColumns+` FROM payments INDEXED BY payments_due
		WHERE final = 0 AND MIN(COALESCE(requested_at, first_seen_at), first_seen_at) < ?
		ORDER BY MIN(COALESCE(requested_at, first_seen_at), first_seen_at), id LIMIT ?`, fmtTime(cutoff), limit)
	if err != nil {
		return nil, fmt.Errorf("open payments: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("open payments: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// OldestOpen returns the age base of the oldest open payment, and false when none is open.
func (l *Ledger) OldestOpen(ctx context.Context) (time.Time, bool, error) {
	var s sql.NullString
	err := l.r.QueryRowContext(ctx, `SELECT MIN(MIN(COALESCE(requested_at, first_seen_at), first_seen_at))
		FROM payments INDEXED BY payments_due WHERE final = 0`).Scan(&s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest open payment: %w", err)
	}
	if !s.Valid {
		return time.Time{}, false, nil
	}
	return parseTime(s), true, nil
}

// AgeBase is when a payment's age counts from: when it was requested, or when we first heard of
// it if that was earlier (events before it are missing).
func (p *Payment) AgeBase() time.Time {
	if p.RequestedAt != nil && !p.RequestedAt.IsZero() && p.RequestedAt.Before(p.FirstSeenAt) {
		return *p.RequestedAt
	}
	return p.FirstSeenAt
}

// Alert is a discrepancy whose opening or resolution has not been announced yet.
type Alert struct {
	Discrepancy
	// Resolved: this is the resolution's announcement (the opening was announced before).
	Resolved bool
}

// PendingAlerts lists, oldest first, discrepancies of the given kinds whose opening was not yet
// announced, and announced ones that resolved since.
func (l *Ledger) PendingAlerts(ctx context.Context, kinds []payment.Kind, limit int) ([]Alert, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = 100
	}
	args := make([]any, 0, len(kinds)+1)
	for _, k := range kinds {
		args = append(args, string(k))
	}
	args = append(args, limit)
	q := `SELECT id, payment_id, kind, subject, details, event_id, origin, detected_at, resolved_at, resolution,
		alerted_at IS NOT NULL FROM discrepancies
		WHERE (alerted_at IS NULL OR (resolved_at IS NOT NULL AND resolve_alerted_at IS NULL))
		AND kind IN (?` + strings.Repeat(",?", len(kinds)-1) + `) ORDER BY id LIMIT ?`
	rows, err := l.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("pending alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		var kind, details string
		var det, res sql.NullString
		var alerted bool
		if err := rows.Scan(&a.ID, &a.PaymentID, &kind, &a.Subject, &details, &a.EventID, &a.Origin, &det, &res, &a.Resolution, &alerted); err != nil {
			return nil, fmt.Errorf("pending alerts: %w", err)
		}
		a.Kind, a.Details = payment.Kind(kind), json.RawMessage(details)
		a.DetectedAt, a.ResolvedAt = parseTime(det), timePtr(res)
		// Opened and resolved before any announcement: one message saying both is enough.
		a.Resolved = alerted && a.ResolvedAt != nil
		out = append(out, a)
	}
	return out, rows.Err()
}

// MarkAlerted records that an alert was delivered: the opening, the resolution, or (for a
// discrepancy already resolved when first announced) both.
func (t *Tx) MarkAlerted(ctx context.Context, a Alert) error {
	now := fmtTime(t.now)
	var err error
	switch {
	case a.Resolved:
		_, err = t.tx.ExecContext(ctx, `UPDATE discrepancies SET resolve_alerted_at = ? WHERE id = ?`, now, a.ID)
	case a.ResolvedAt != nil:
		_, err = t.tx.ExecContext(ctx, `UPDATE discrepancies SET alerted_at = ?, resolve_alerted_at = ? WHERE id = ?`, now, now, a.ID)
	default:
		_, err = t.tx.ExecContext(ctx, `UPDATE discrepancies SET alerted_at = ? WHERE id = ?`, now, a.ID)
	}
	if err != nil {
		return fmt.Errorf("mark alert %d: %w", a.ID, err)
	}
	return nil
}

// ResolveOpenSubject resolves the open discrepancy of a payment of one kind about one subject
// (an action id, "provider"), returning how many it resolved (0 or 1).
func (t *Tx) ResolveOpenSubject(ctx context.Context, paymentID string, kind payment.Kind, subject, resolution string) (int64, error) {
	r, err := t.tx.ExecContext(ctx, `UPDATE discrepancies SET resolved_at = ?, resolution = ?
		WHERE payment_id = ? AND kind = ? AND subject = ? AND resolved_at IS NULL`, fmtTime(t.now), resolution, paymentID, string(kind), subject)
	if err != nil {
		return 0, fmt.Errorf("resolve %s of %s: %w", kind, paymentID, err)
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// ResolveOpen resolves the open discrepancies of a payment of one kind, returning how many.
func (t *Tx) ResolveOpen(ctx context.Context, paymentID string, kind payment.Kind, resolution string) (int64, error) {
	r, err := t.tx.ExecContext(ctx, `UPDATE discrepancies SET resolved_at = ?, resolution = ?
		WHERE payment_id = ? AND kind = ? AND resolved_at IS NULL`, fmtTime(t.now), resolution, paymentID, string(kind))
	if err != nil {
		return 0, fmt.Errorf("resolve %s of %s: %w", kind, paymentID, err)
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// FirstAppliedAt returns when the ledger applied its first event (zero for an empty ledger).
func (l *Ledger) FirstAppliedAt(ctx context.Context) (time.Time, error) {
	var s sql.NullString
	if err := l.r.QueryRowContext(ctx, `SELECT MIN(applied_at) FROM events`).Scan(&s); err != nil {
		return time.Time{}, fmt.Errorf("first applied event: %w", err)
	}
	return parseTime(s), nil
}

// OpenCounts returns the number of dead letters pending (neither applied by a replay nor
// discarded: the rule of `dlq list`) and of open discrepancies by kind (the rule of
// Discrepancies, so the stuck count is the one `reconciler stuck` lists): the gauges operators
// alert on.
func (l *Ledger) OpenCounts(ctx context.Context) (deadLetters int64, discrepancies map[payment.Kind]int64, err error) {
	if err = l.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM dead_letters WHERE `+pendingDeadLetter).Scan(&deadLetters); err != nil {
		return 0, nil, fmt.Errorf("open counts: %w", err)
	}
	rows, err := l.r.QueryContext(ctx, `SELECT kind, COUNT(*) FROM discrepancies WHERE `+openDiscrepancy+` GROUP BY kind`)
	if err != nil {
		return 0, nil, fmt.Errorf("open counts: %w", err)
	}
	defer rows.Close()
	discrepancies = map[payment.Kind]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return 0, nil, fmt.Errorf("open counts: %w", err)
		}
		discrepancies[payment.Kind(k)] = n
	}
	return deadLetters, discrepancies, rows.Err()
}
