package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SettlementEntry is one posted capture or refund with the keys a bank statement may name it by.
type SettlementEntry struct {
	PaymentID, ActionID, Kind string
	Amount                    int64
	Currency                  string
	At                        time.Time
	Reference                 string
	KNETPaymentID             string
	KNETTransactionID         string
	BankReference             string
	// PostDate is KNET's post_date of the payment (MMDD), when known: the day KNET says the
	// bank posts it.
	PostDate string
	// Paid is the recorded statement line that paid it; nil while none has.
	Paid *SettlementPaid
}

// SettlementPaid is the statement line that paid a posting, with the days its statement covers:
// a later statement's line for the posting is the bank posting the money again when it covers
// other days, the same statement seen again (a corrected copy) when it covers the same ones.
type SettlementPaid struct {
	SHA256, File string
	From, To     time.Time
	Line         int
}

// SettlementEntries returns the posted captures and refunds whose action happened in [from, to),
// with the payment's reference and KNET ids, and the statement line that paid each, if one did.
func (l *Ledger) SettlementEntries(ctx context.Context, from, to time.Time) ([]SettlementEntry, error) {
	return settlementEntries(ctx, l.r, from, to)
}

// SettlementEntries is Ledger.SettlementEntries inside the transaction: what it wrote so far
// included.
func (t *Tx) SettlementEntries(ctx context.Context, from, to time.Time) ([]SettlementEntry, error) {
	return settlementEntries(ctx, t.tx, from, to)
}

func settlementEntries(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, from, to time.Time) ([]SettlementEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT p.payment_id, p.action_id, p.kind, p.amount, p.currency,
			COALESCE(p.occurred_at, p.created_at), y.reference,
			COALESCE(k.knet_payment_id, ''), COALESCE(k.knet_transaction_id, ''), COALESCE(k.bank_reference, ''),
			COALESCE(k.post_date, ''), r.statement_sha256, r.file, r.period_from, r.period_to, m.line
		FROM postings p JOIN payments y ON y.id = p.payment_id LEFT JOIN knet_ids k ON k.payment_id = p.payment_id
			LEFT JOIN settlement_matches m ON m.action_id = p.action_id LEFT JOIN settlement_runs r ON r.id = m.run_id
		WHERE p.state = 'posted' AND COALESCE(p.occurred_at, p.created_at) >= ? AND COALESCE(p.occurred_at, p.created_at) < ?
		ORDER BY 6, p.action_id`, fmtTime(from), fmtTime(to))
	if err != nil {
		return nil, fmt.Errorf("settlement entries: %w", err)
	}
	defer rows.Close()
	var out []SettlementEntry
	for rows.Next() {
		var e SettlementEntry
		var at string
		var sha, file, pFrom, pTo sql.NullString
		var line sql.NullInt64
		if err := rows.Scan(&e.PaymentID, &e.ActionID, &e.Kind, &e.Amount, &e.Currency, &at, &e.Reference,
			&e.KNETPaymentID, &e.KNETTransactionID, &e.BankReference, &e.PostDate, &sha, &file, &pFrom, &pTo, &line); err != nil {
			return nil, fmt.Errorf("settlement entries: %w", err)
		}
		e.At, _ = time.Parse(timeFormat, at)
		if sha.Valid {
			e.Paid = &SettlementPaid{SHA256: sha.String, File: file.String, From: parseTime(pFrom), To: parseTime(pTo), Line: int(line.Int64)}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// SettlementRun is one statement matched against the ledger.
type SettlementRun struct {
	SHA256, File                                        string
	From, To                                            time.Time
	Lines, Matched, LedgerOnly, StatementOnly, Mismatch int
	// Result is the whole result as JSON, as the command printed it.
	Result []byte
}

// SettlementMatch records which statement line paid a posting.
type SettlementMatch struct {
	PaymentID       string
	ActionID        string
	Line            int
	StatementAmount int64
}

// RecordSettlement records run and its matches once: a statement already recorded (same
// SHA-256) changes nothing, and again reports it with the first run's id.
func (t *Tx) RecordSettlement(ctx context.Context, run SettlementRun, matches []SettlementMatch) (id int64, again bool, err error) {
	r, err := t.tx.ExecContext(ctx, `INSERT INTO settlement_runs (statement_sha256, file, period_from, period_to, lines, matched,
		ledger_only, statement_only, amount_mismatch, result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (statement_sha256) DO NOTHING`, run.SHA256, run.File, fmtTime(run.From), fmtTime(run.To), run.Lines,
		run.Matched, run.LedgerOnly, run.StatementOnly, run.Mismatch, string(run.Result), fmtTime(t.now))
	if err != nil {
		return 0, false, fmt.Errorf("record settlement: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		err := t.tx.QueryRowContext(ctx, `SELECT id FROM settlement_runs WHERE statement_sha256 = ?`, run.SHA256).Scan(&id)
		return id, true, err
	}
	if id, err = r.LastInsertId(); err != nil {
		return 0, false, err
	}
	for _, m := range matches {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO settlement_matches (action_id, run_id, line, statement_amount, matched_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (action_id) DO NOTHING`, m.ActionID, id, m.Line, m.StatementAmount, fmtTime(t.now)); err != nil {
			return 0, false, fmt.Errorf("record settlement match %s: %w", m.ActionID, err)
		}
	}
	return id, false, nil
}
