package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"knetrecon/internal/payment"
)

// ExpectedDeposit is the money the settled statements promise for one posting day (and batch,
// when the bank pays per batch): the net of that day's lines on the latest statement that has
// the day, and the credit that paid it, once an account statement showed one.
type ExpectedDeposit struct {
	PostingDate string // YYYY-MM-DD in the report time zone
	Batch       string
	Net         int64
	Lines       int
	// File names the statement the day's lines come from.
	File string
	// Paid is the credit recorded for it; nil while none is.
	Paid *DepositCredit
}

// DepositCredit is a credit on the merchant's account that paid a posting day's net.
type DepositCredit struct {
	PostingDate, Batch string
	Line               int
	Date               time.Time
	Amount             int64
	Reference          string
	// File names the account statement it was on.
	File string
}

// ExpectedDeposits returns the posting days in [from, to] (YYYY-MM-DD) with statement lines, by
// day then batch (one row per day when byBatch is false), each from the latest statement that
// has the day: a corrected statement supersedes the first.
func (t *Tx) ExpectedDeposits(ctx context.Context, from, to string, byBatch bool) ([]ExpectedDeposit, error) {
	batch := "''"
	if byBatch {
		batch = "s.batch"
	}
	rows, err := t.tx.QueryContext(ctx, `WITH latest AS (
			SELECT posting_date, MAX(run_id) AS run_id FROM statement_lines WHERE posting_date >= ? AND posting_date <= ? GROUP BY posting_date)
		SELECT s.posting_date, `+batch+`, SUM(s.net), COUNT(*), r.file,
			c.line, c.credit_date, c.amount, c.reference, COALESCE(dr.file, '')
		FROM statement_lines s JOIN latest l ON l.posting_date = s.posting_date AND l.run_id = s.run_id
			JOIN settlement_runs r ON r.id = s.run_id
			LEFT JOIN deposit_credits c ON c.posting_date = s.posting_date AND c.batch = `+batch+`
			LEFT JOIN deposit_runs dr ON dr.id = c.run_id
		GROUP BY s.posting_date, `+batch+` ORDER BY s.posting_date, `+batch, from, to)
	if err != nil {
		return nil, fmt.Errorf("expected deposits: %w", err)
	}
	defer rows.Close()
	var out []ExpectedDeposit
	for rows.Next() {
		var e ExpectedDeposit
		var line, amount sql.NullInt64
		var date, ref sql.NullString
		var file string
		if err := rows.Scan(&e.PostingDate, &e.Batch, &e.Net, &e.Lines, &e.File, &line, &date, &amount, &ref, &file); err != nil {
			return nil, fmt.Errorf("expected deposits: %w", err)
		}
		if line.Valid {
			e.Paid = &DepositCredit{PostingDate: e.PostingDate, Batch: e.Batch, Line: int(line.Int64), Date: parseTime(date), Amount: amount.Int64,
				Reference: ref.String, File: file}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// DepositRun is one account statement matched against the expected deposits.
type DepositRun struct {
	SHA256, File string
	From, To     time.Time
	// Result is the whole result as JSON, as the command printed it.
	Result []byte
}

// RecordDeposits records run and the credits that paid posting days once: an account statement
// already recorded (same SHA-256) changes nothing, and again reports it. A posting day paid
// before keeps its first credit.
func (t *Tx) RecordDeposits(ctx context.Context, run DepositRun, credits []DepositCredit) (again bool, err error) {
	r, err := t.tx.ExecContext(ctx, `INSERT INTO deposit_runs (statement_sha256, file, period_from, period_to, result, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (statement_sha256) DO NOTHING`, run.SHA256, run.File, fmtTime(run.From), fmtTime(run.To),
		string(run.Result), fmtTime(t.now))
	if err != nil {
		return false, fmt.Errorf("record deposits: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return true, nil
	}
	id, err := r.LastInsertId()
	if err != nil {
		return false, err
	}
	for _, c := range credits {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO deposit_credits (posting_date, batch, run_id, line, credit_date, amount, reference)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (posting_date, batch) DO NOTHING`, c.PostingDate, c.Batch, id, c.Line, fmtTime(c.Date),
			c.Amount, c.Reference); err != nil {
			return false, fmt.Errorf("record deposit of %s: %w", c.PostingDate, err)
		}
	}
	return false, nil
}

// DepositRecorded reports whether an account statement with this SHA-256 was recorded.
func (t *Tx) DepositRecorded(ctx context.Context, sha string) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM deposit_runs WHERE statement_sha256 = ?`, sha).Scan(&n)
	return n > 0, err
}

// OpenSubjects returns the open discrepancies of kinds, keyed by SubjectKey: a caller about to
// resolve many of them resolves only those open (most are not).
func (t *Tx) OpenSubjects(ctx context.Context, kinds ...payment.Kind) (map[string]bool, error) {
	out := map[string]bool{}
	for _, k := range kinds {
		rows, err := t.tx.QueryContext(ctx, `SELECT payment_id, subject FROM discrepancies WHERE kind = ? AND resolved_at IS NULL`, string(k))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", k, err)
		}
		for rows.Next() {
			var pay, subject string
			if err := rows.Scan(&pay, &subject); err != nil {
				rows.Close()
				return nil, fmt.Errorf("open %s: %w", k, err)
			}
			out[SubjectKey(pay, k, subject)] = true
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SubjectKey names a discrepancy by its payment, kind and subject (OpenSubjects' keys).
func SubjectKey(paymentID string, kind payment.Kind, subject string) string {
	return paymentID + "\x00" + string(kind) + "\x00" + subject
}
