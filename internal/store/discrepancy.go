package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"knetrecon/internal/payment"
)

// openDiscrepancy is the one rule for a discrepancy that counts as open, in every list and count
// (the gauges, `reconciler stuck`, `discrepancies`, the desk): not resolved and, for a stuck mark,
// its payment not final. A stuck mark holds only while its payment is open; the sweep resolves
// the mark of a payment that became final, and until it does the mark is not counted.
const openDiscrepancy = `resolved_at IS NULL AND NOT (kind = '` + string(payment.KindStuck) + `' AND EXISTS (
	SELECT 1 FROM payments WHERE payments.id = discrepancies.payment_id AND payments.final = 1))`

// Events of a discrepancy's life, as its history lists them.
const (
	DiscrepancyOpened   = "opened"
	DiscrepancyResolved = "resolved"
	DiscrepancyReopened = "reopened"
)

// DiscrepancyEvent is one step of a discrepancy's life: opened, resolved (by whom, with what
// note) or reopened because a later check found it true again.
type DiscrepancyEvent struct {
	At    time.Time `json:"at"`
	Event string    `json:"event"`
	// By is the operator of a resolution by hand; empty for the reconciler's own steps.
	By   string `json:"by,omitempty"`
	Note string `json:"note,omitempty"`
}

// AddOrReopenDiscrepancy records that a check found discrepancy (payment, kind, subject) true:
// it is opened if it was never recorded and reopened if it was resolved (a resolution while it
// was still true), its details replaced by the new finding. The resolution a reopening clears
// is kept in the discrepancy's history with who made it and the note, and the opening is
// announced again if its resolution was. All on the transaction's clock. It reports whether
// the discrepancy was not open before.
//
// Only what a check finds again and again takes this road (the stuck mark, Checkout.com
// disagreeing with the ledger, a payment unknown to it); a discrepancy about one event or one
// statement is recorded once (AddDiscrepancy).
func (t *Tx) AddOrReopenDiscrepancy(ctx context.Context, paymentID string, kind payment.Kind, subject string, origin Origin, details map[string]any) (bool, error) {
	var id int64
	var resolvedAt sql.NullString
	var by, resolution string
	err := t.tx.QueryRowContext(ctx, `SELECT id, resolved_at, resolved_by, resolution FROM discrepancies
		WHERE payment_id = ? AND kind = ? AND subject = ?`, paymentID, string(kind), subject).Scan(&id, &resolvedAt, &by, &resolution)
	if errors.Is(err, sql.ErrNoRows) {
		return t.AddDiscrepancy(ctx, paymentID, kind, subject, origin, details)
	}
	if err != nil {
		return false, fmt.Errorf("discrepancy %s of %s: %w", kind, paymentID, err)
	}
	if !resolvedAt.Valid {
		return false, nil
	}
	b, err := json.Marshal(details)
	if err != nil {
		return false, fmt.Errorf("discrepancy %s: %w", kind, err)
	}
	now := fmtTime(t.now)
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO discrepancy_history (discrepancy_id, at, event, by, note)
		VALUES (?, ?, ?, ?, ?), (?, ?, ?, '', ?)`,
		id, resolvedAt.String, DiscrepancyResolved, by, resolution,
		id, now, DiscrepancyReopened, "still true at a later check ("+string(origin)+")"); err != nil {
		return false, fmt.Errorf("reopen discrepancy %d: %w", id, err)
	}
	// An opening whose resolution was announced is announced again; one whose resolution was
	// not announced yet is still the news it was.
	if _, err := t.tx.ExecContext(ctx, `UPDATE discrepancies SET resolved_at = NULL, resolution = '', resolved_by = '',
		details = ?, alerted_at = CASE WHEN resolve_alerted_at IS NULL THEN alerted_at END, resolve_alerted_at = NULL
		WHERE id = ?`, string(b), id); err != nil {
		return false, fmt.Errorf("reopen discrepancy %d: %w", id, err)
	}
	return true, nil
}

// PaymentFinal reports whether payment id is final at this point of the transaction (false for
// a payment the ledger does not hold).
func (t *Tx) PaymentFinal(ctx context.Context, id string) (bool, error) {
	if p, cached := t.cachedPayment(id); cached {
		return p != nil && payment.Status(p.Status).Final(), nil
	}
	var final int
	err := t.tx.QueryRowContext(ctx, `SELECT final FROM payments WHERE id = ?`, id).Scan(&final)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("payment %s: %w", id, err)
	}
	return final == 1, nil
}

// OpenOnFinal lists, sorted, the final payments that still have an open discrepancy of kind:
// for a kind that holds only while a payment is open (stuck), the marks left to resolve.
func (l *Ledger) OpenOnFinal(ctx context.Context, kind payment.Kind) ([]string, error) {
	rows, err := l.r.QueryContext(ctx, `SELECT DISTINCT d.payment_id FROM discrepancies d JOIN payments p ON p.id = d.payment_id
		WHERE d.kind = ? AND d.resolved_at IS NULL AND p.final = 1 ORDER BY d.payment_id`, string(kind))
	if err != nil {
		return nil, fmt.Errorf("open %s on final payments: %w", kind, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("open %s on final payments: %w", kind, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// withHistory fills in the history of ds (sorted by id): opened, what each reopening kept, and
// the current resolution.
func (l *Ledger) withHistory(ctx context.Context, ds []Discrepancy) error {
	if len(ds) == 0 {
		return nil
	}
	archived := map[int64][]DiscrepancyEvent{}
	rows, err := l.r.QueryContext(ctx, `SELECT discrepancy_id, at, event, by, note FROM discrepancy_history
		WHERE discrepancy_id BETWEEN ? AND ? ORDER BY discrepancy_id, id`, ds[0].ID, ds[len(ds)-1].ID)
	if err != nil {
		return fmt.Errorf("discrepancy history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var at sql.NullString
		var e DiscrepancyEvent
		if err := rows.Scan(&id, &at, &e.Event, &e.By, &e.Note); err != nil {
			return fmt.Errorf("discrepancy history: %w", err)
		}
		e.At = parseTime(at)
		archived[id] = append(archived[id], e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("discrepancy history: %w", err)
	}
	for i := range ds {
		d := &ds[i]
		d.History = append([]DiscrepancyEvent{{At: d.DetectedAt, Event: DiscrepancyOpened}}, archived[d.ID]...)
		for _, e := range archived[d.ID] {
			if e.Event == DiscrepancyReopened {
				d.Reopened++
			}
		}
		if d.ResolvedAt != nil {
			d.History = append(d.History, DiscrepancyEvent{At: *d.ResolvedAt, Event: DiscrepancyResolved, By: d.ResolvedBy, Note: d.Resolution})
		}
	}
	return nil
}
