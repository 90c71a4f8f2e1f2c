package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
)

// Digest sums up what two replicas of the ledger must agree on: every payment's state and money,
// every posting, every discrepancy, whether and by whom it is resolved, and its earlier
// resolutions and reopenings. Times a ledger stamps when it
// applies (applied_at, detected_at…) differ between replicas and are left out.
type Digest struct {
	Payments      int64  `json:"payments"`
	Postings      int64  `json:"postings"`
	Discrepancies int64  `json:"discrepancies"`
	Captured      int64  `json:"captured"`
	Refunded      int64  `json:"refunded"`
	SHA256        string `json:"sha256"`
	StreamSeq     uint64 `json:"stream_seq"`
}

// digestQueries are the rows a Digest hashes, each in a stable order.
var digestQueries = []struct {
	name, q string
}{
	{"payments", `SELECT id, status, provider_status, amount, currency, reference, captured, refunded, held, final, first_seen_at
		FROM payments ORDER BY id`},
	{"postings", `SELECT action_id, payment_id, kind, amount, currency, state, event_id, origin FROM postings ORDER BY action_id`},
	{"discrepancies", `SELECT payment_id, kind, subject, resolved_at IS NOT NULL, resolution, resolved_by FROM discrepancies ORDER BY payment_id, kind, subject`},
	{"discrepancy_history", `SELECT d.payment_id, d.kind, d.subject, h.event, h.by, h.note FROM discrepancy_history h
		JOIN discrepancies d ON d.id = h.discrepancy_id ORDER BY d.payment_id, d.kind, d.subject, h.id`},
}

// Digest reads the ledger's Digest in one read transaction.
func (l *Ledger) Digest(ctx context.Context) (Digest, error) {
	var d Digest
	tx, err := l.r.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return d, fmt.Errorf("digest: %w", err)
	}
	defer tx.Rollback()
	h := sha256.New()
	for _, dq := range digestQueries {
		rows, err := tx.QueryContext(ctx, dq.q)
		if err != nil {
			return d, fmt.Errorf("digest %s: %w", dq.name, err)
		}
		cols, _ := rows.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		var n int64
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return d, fmt.Errorf("digest %s: %w", dq.name, err)
			}
			for _, v := range vals {
				h.Write(v)
				h.Write([]byte{0})
			}
			h.Write([]byte{'\n'})
			n++
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return d, fmt.Errorf("digest %s: %w", dq.name, err)
		}
		rows.Close()
		switch dq.name {
		case "payments":
			d.Payments = n
		case "postings":
			d.Postings = n
		case "discrepancies":
			d.Discrepancies = n
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(captured), 0), COALESCE(SUM(refunded), 0) FROM payments`).Scan(&d.Captured, &d.Refunded); err != nil {
		return d, fmt.Errorf("digest: %w", err)
	}
	var seq sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM stream_position`).Scan(&seq); err != nil {
		return d, fmt.Errorf("digest: %w", err)
	}
	d.StreamSeq = uint64(seq.Int64)
	d.SHA256 = hex.EncodeToString(h.Sum(nil))
	return d, nil
}
