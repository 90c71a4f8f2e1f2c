package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mattn/go-sqlite3"

	"knetrecon/internal/payment"
)

// Advance records that the stream is applied up to seq (a lower seq changes nothing), in the
// transaction that applied it.
func (t *Tx) Advance(ctx context.Context, seq uint64) error {
	if seq == 0 {
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO stream_position (id, seq, updated_at) VALUES (1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET seq = MAX(seq, excluded.seq), updated_at = excluded.updated_at`, int64(seq), fmtTime(t.now)); err != nil {
		return fmt.Errorf("stream position %d: %w", seq, err)
	}
	return nil
}

// FactOnce records that fact id (of kind, at stream sequence seq) is applied; it reports false when
// it was already, and the fact must change nothing more.
func (t *Tx) FactOnce(ctx context.Context, id, kind string, seq uint64) (bool, error) {
	r, err := t.tx.ExecContext(ctx, `INSERT INTO facts_applied (id, kind, seq, applied_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		id, kind, int64(seq), fmtTime(t.now))
	if err != nil {
		return false, fmt.Errorf("fact %s: %w", id, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// SetFactResult keeps what applying fact id did, for whoever published it to read.
func (t *Tx) SetFactResult(ctx context.Context, id string, result []byte) error {
	if _, err := t.tx.ExecContext(ctx, `UPDATE facts_applied SET result = ? WHERE id = ?`, string(result), id); err != nil {
		return fmt.Errorf("fact %s: %w", id, err)
	}
	return nil
}

// FactResult returns what applying fact id did (JSON), and whether this ledger applied it.
func (l *Ledger) FactResult(ctx context.Context, id string) ([]byte, bool, error) {
	var r string
	err := l.r.QueryRowContext(ctx, `SELECT result FROM facts_applied WHERE id = ?`, id).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fact %s: %w", id, err)
	}
	return []byte(r), true, nil
}

// Position returns the highest stream sequence the ledger has applied (0: none).
func (l *Ledger) Position(ctx context.Context) (uint64, error) {
	var seq sql.NullInt64
	if err := l.r.QueryRowContext(ctx, `SELECT MAX(seq) FROM stream_position`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("stream position: %w", err)
	}
	return uint64(seq.Int64), nil
}

// RecordAction keeps an operator's action in the transaction, stamped with its clock.
func (t *Tx) RecordAction(ctx context.Context, a Action) error {
	at := t.now
	if !a.At.IsZero() {
		at = a.At
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO operator_actions (at, who, action, subject, note, result) VALUES (?, ?, ?, ?, ?, ?)`,
		fmtTime(at), a.Who, a.Action, a.Subject, a.Note, a.Result); err != nil {
		return fmt.Errorf("record %s of %s: %w", a.Action, a.Subject, err)
	}
	return nil
}

// DiscrepancyKey names a discrepancy the same way in every ledger: ids are each ledger's own,
// the payment, the kind and the subject are not.
type DiscrepancyKey struct {
	PaymentID string       `json:"payment_id"`
	Kind      payment.Kind `json:"kind"`
	Subject   string       `json:"subject"`
}

// DiscrepancyKeyOf returns the key of discrepancy id.
func (l *Ledger) DiscrepancyKeyOf(ctx context.Context, id int64) (DiscrepancyKey, error) {
	var k DiscrepancyKey
	err := l.r.QueryRowContext(ctx, `SELECT payment_id, kind, subject FROM discrepancies WHERE id = ?`, id).Scan(&k.PaymentID, &k.Kind, &k.Subject)
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("discrepancy %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return k, fmt.Errorf("discrepancy %d: %w", id, err)
	}
	return k, nil
}

// DiscrepancyOpen reports whether discrepancy id exists and is not resolved yet.
func (l *Ledger) DiscrepancyOpen(ctx context.Context, id int64) (bool, error) {
	var n int
	if err := l.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM discrepancies WHERE id = ? AND resolved_at IS NULL`, id).Scan(&n); err != nil {
		return false, fmt.Errorf("discrepancy %d: %w", id, err)
	}
	return n == 1, nil
}

// DiscrepancyID returns this ledger's id of the discrepancy with key k.
func (t *Tx) DiscrepancyID(ctx context.Context, k DiscrepancyKey) (int64, error) {
	var id int64
	err := t.tx.QueryRowContext(ctx, `SELECT id FROM discrepancies WHERE payment_id = ? AND kind = ? AND subject = ?`,
		k.PaymentID, string(k.Kind), k.Subject).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("discrepancy %s/%s/%s: %w", k.PaymentID, k.Kind, k.Subject, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("discrepancy %s/%s: %w", k.PaymentID, k.Kind, err)
	}
	return id, nil
}

// DeadLetterSeqOf returns the stream sequence of dead letter id: what names it in every ledger.
func (l *Ledger) DeadLetterSeqOf(ctx context.Context, id int64) (uint64, error) {
	var seq sql.NullInt64
	err := l.r.QueryRowContext(ctx, `SELECT stream_seq FROM dead_letters WHERE id = ?`, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("dead letter %d: %w", id, err)
	}
	if !seq.Valid {
		return 0, fmt.Errorf("dead letter %d has no stream sequence", id)
	}
	return uint64(seq.Int64), nil
}

// DeadLetterID returns this ledger's id of the dead letter of stream sequence seq.
func (t *Tx) DeadLetterID(ctx context.Context, seq uint64) (int64, error) {
	var id int64
	err := t.tx.QueryRowContext(ctx, `SELECT id FROM dead_letters WHERE stream_seq = ? ORDER BY id LIMIT 1`, int64(seq)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("dead letter of stream seq %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("dead letter of stream seq %d: %w", seq, err)
	}
	return id, nil
}

// Backup copies the ledger into dest with SQLite's online backup (writes go on meanwhile; the
// copy is one consistent snapshot) and returns the stream position it holds: a ledger restored
// from dest replays the stream from the next sequence. dest is written beside itself and renamed
// into place, synced, so a crash never leaves half a backup under its name.
func (l *Ledger) Backup(ctx context.Context, dest string) (uint64, error) {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	tmp := abs + ".partial"
	_ = os.Remove(tmp)
	if err := makePrivate(tmp); err != nil { // the backup holds every payment, like the ledger
		return 0, fmt.Errorf("backup: %w", err)
	}
	dst, err := sql.Open("sqlite3", "file:"+tmp)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer dst.Close()
	dconn, err := dst.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("backup: open %s: %w", tmp, err)
	}
	defer dconn.Close()
	sconn, err := l.r.Conn(ctx) // a reader: writes go on while the copy is made
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer sconn.Close()
	err = dconn.Raw(func(d any) error {
		return sconn.Raw(func(s any) error {
			b, err := d.(*sqlite3.SQLiteConn).Backup("main", s.(*sqlite3.SQLiteConn), "main")
			if err != nil {
				return err
			}
			// One step: the whole copy under one read of the source, so it is one snapshot.
			if _, err := b.Step(-1); err != nil {
				b.Finish()
				return err
			}
			return b.Finish()
		})
	})
	if err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("backup to %s: %w", dest, classify(err))
	}
	var seq sql.NullInt64
	if err := dconn.QueryRowContext(ctx, `SELECT MAX(seq) FROM stream_position`).Scan(&seq); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("backup: read its stream position: %w", err)
	}
	dconn.Close()
	dst.Close()
	if err := syncFile(tmp); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(filepath.Dir(abs)); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return uint64(seq.Int64), nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
