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
	// Amount is the line's amount; OK says it was the posting's (only such a line paid it: one
	// of another amount is an amount_mismatch a later line may correct).
	Amount int64
	OK     bool
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
			COALESCE(k.post_date, ''), r.statement_sha256, r.file, r.period_from, r.period_to, m.line, m.statement_amount, m.ok
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
		var line, amount, ok sql.NullInt64
		if err := rows.Scan(&e.PaymentID, &e.ActionID, &e.Kind, &e.Amount, &e.Currency, &at, &e.Reference,
			&e.KNETPaymentID, &e.KNETTransactionID, &e.BankReference, &e.PostDate, &sha, &file, &pFrom, &pTo, &line, &amount, &ok); err != nil {
			return nil, fmt.Errorf("settlement entries: %w", err)
		}
		e.At, _ = time.Parse(timeFormat, at)
		if sha.Valid {
			e.Paid = &SettlementPaid{SHA256: sha.String, File: file.String, From: parseTime(pFrom), To: parseTime(pTo), Line: int(line.Int64),
				Amount: amount.Int64, OK: ok.Int64 == 1}
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

// SettlementMatch records which statement line met a posting.
type SettlementMatch struct {
	PaymentID       string
	ActionID        string
	Line            int
	StatementAmount int64
	// Fee is the bank's commission on the line, Net what it pays the merchant for it (negative
	// for a refund); nil when the statement does not say.
	Fee, Net *int64
	// OK says the line has the posting's amount: it paid the posting. A line of another amount
	// is recorded too, so that a later line for the posting supersedes it.
	OK bool
}

// StatementLine is one line of a recorded statement, signed (a refund's gross and net are
// negative), with the posting it matched when it did.
type StatementLine struct {
	Line        int
	PostingDate string // YYYY-MM-DD in the report time zone
	Batch       string
	Kind        string
	Gross, Net  int64
	Fee         *int64
	ActionID    string
}

// RecordSettlement records run, its lines and its matches once: a statement already recorded
// (same SHA-256) changes nothing, and again reports it with the first run's id. A match
// supersedes the one an earlier statement recorded for the same posting.
func (t *Tx) RecordSettlement(ctx context.Context, run SettlementRun, matches []SettlementMatch, lines ...StatementLine) (id int64, again bool, err error) {
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
	match, err := t.tx.PrepareContext(ctx, `INSERT INTO settlement_matches (action_id, run_id, line, statement_amount, matched_at, fee, net, ok)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (action_id) DO UPDATE SET run_id = excluded.run_id, line = excluded.line,
		statement_amount = excluded.statement_amount, matched_at = excluded.matched_at, fee = excluded.fee, net = excluded.net, ok = excluded.ok`)
	if err != nil {
		return 0, false, fmt.Errorf("record settlement: %w", err)
	}
	defer match.Close()
	for _, m := range matches {
		if _, err := match.ExecContext(ctx, m.ActionID, id, m.Line, m.StatementAmount, fmtTime(t.now), nullInt(m.Fee), nullInt(m.Net), boolInt(m.OK)); err != nil {
			return 0, false, fmt.Errorf("record settlement match %s: %w", m.ActionID, err)
		}
	}
	line, err := t.tx.PrepareContext(ctx, `INSERT INTO statement_lines (run_id, line, posting_date, batch, kind, gross, fee, net, action_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, false, fmt.Errorf("record statement lines: %w", err)
	}
	defer line.Close()
	for _, l := range lines {
		if _, err := line.ExecContext(ctx, id, l.Line, l.PostingDate, l.Batch, l.Kind, l.Gross, nullInt(l.Fee), l.Net, l.ActionID); err != nil {
			return 0, false, fmt.Errorf("record statement line %d: %w", l.Line, err)
		}
	}
	return id, false, nil
}

func nullInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
