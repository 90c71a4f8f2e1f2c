package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KNETIDs are KNET's own ids of a payment (Checkout.com's payment source for KNET): the keys the
// acquiring bank's statement and the KNET merchant portal carry.
type KNETIDs struct {
	PaymentID     string    `json:"knet_payment_id,omitempty"`
	TransactionID string    `json:"knet_transaction_id,omitempty"`
	BankReference string    `json:"bank_reference,omitempty"`
	AuthCode      string    `json:"auth_code,omitempty"`
	PostDate      string    `json:"post_date,omitempty"` // MMDD
	Result        string    `json:"knet_result,omitempty"`
	PTLF          string    `json:"ptlf,omitempty"`
	UDF           [5]string `json:"user_defined_fields"`
}

// maxKNETLen bounds each KNET field.
const maxKNETLen = 256

// fields lists the ids with their names, for bounds and storage.
func (k *KNETIDs) fields() []struct{ name, v string } {
	return []struct{ name, v string }{
		{"knet_payment_id", k.PaymentID}, {"knet_transaction_id", k.TransactionID}, {"bank_reference", k.BankReference},
		{"auth_code", k.AuthCode}, {"post_date", k.PostDate}, {"knet_result", k.Result}, {"ptlf", k.PTLF},
		{"udf1", k.UDF[0]}, {"udf2", k.UDF[1]}, {"udf3", k.UDF[2]}, {"udf4", k.UDF[3]}, {"udf5", k.UDF[4]},
	}
}

// Empty reports whether no id is known.
func (k *KNETIDs) Empty() bool {
	for _, f := range k.fields() {
		if f.v != "" {
			return false
		}
	}
	return true
}

// validate bounds the ids: short, no control characters.
func (k *KNETIDs) validate() error {
	for _, f := range k.fields() {
		if len(f.v) > maxKNETLen || strings.ContainsFunc(f.v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return fmt.Errorf("%s: over %d bytes or with control characters", f.name, maxKNETLen)
		}
	}
	return nil
}

// saveKNET records the ids of payment id: a field already known is kept unless the new answer
// has it too (a later answer fills what an earlier one lacked).
func (t *Tx) saveKNET(ctx context.Context, id string, k *KNETIDs) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO knet_ids (payment_id, knet_payment_id, knet_transaction_id, bank_reference,
		auth_code, post_date, knet_result, ptlf, udf1, udf2, udf3, udf4, udf5, learned_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (payment_id) DO UPDATE SET
		knet_payment_id = COALESCE(NULLIF(excluded.knet_payment_id, ''), knet_payment_id),
		knet_transaction_id = COALESCE(NULLIF(excluded.knet_transaction_id, ''), knet_transaction_id),
		bank_reference = COALESCE(NULLIF(excluded.bank_reference, ''), bank_reference),
		auth_code = COALESCE(NULLIF(excluded.auth_code, ''), auth_code),
		post_date = COALESCE(NULLIF(excluded.post_date, ''), post_date),
		knet_result = COALESCE(NULLIF(excluded.knet_result, ''), knet_result),
		ptlf = COALESCE(NULLIF(excluded.ptlf, ''), ptlf),
		udf1 = COALESCE(NULLIF(excluded.udf1, ''), udf1), udf2 = COALESCE(NULLIF(excluded.udf2, ''), udf2),
		udf3 = COALESCE(NULLIF(excluded.udf3, ''), udf3), udf4 = COALESCE(NULLIF(excluded.udf4, ''), udf4),
		udf5 = COALESCE(NULLIF(excluded.udf5, ''), udf5), learned_at = excluded.learned_at`,
		id, k.PaymentID, k.TransactionID, k.BankReference, k.AuthCode, k.PostDate, k.Result, k.PTLF,
		k.UDF[0], k.UDF[1], k.UDF[2], k.UDF[3], k.UDF[4], fmtTime(t.now))
	if err != nil {
		return fmt.Errorf("save KNET ids of %s: %w", id, err)
	}
	return nil
}

// KNET returns the KNET ids known for payment id (nil when none).
func (l *Ledger) KNET(ctx context.Context, id string) (*KNETIDs, error) {
	var k KNETIDs
	err := l.r.QueryRowContext(ctx, `SELECT knet_payment_id, knet_transaction_id, bank_reference, auth_code, post_date,
		knet_result, ptlf, udf1, udf2, udf3, udf4, udf5 FROM knet_ids WHERE payment_id = ?`, id).
		Scan(&k.PaymentID, &k.TransactionID, &k.BankReference, &k.AuthCode, &k.PostDate, &k.Result, &k.PTLF,
			&k.UDF[0], &k.UDF[1], &k.UDF[2], &k.UDF[3], &k.UDF[4])
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("KNET ids of %s: %w", id, err)
	}
	return &k, nil
}

// FindPayments returns the ids of the payments a key names, newest first: a pay_… id, the
// merchant's reference, or one of KNET's ids (payment id, transaction id, bank reference).
func (l *Ledger) FindPayments(ctx context.Context, key string, limit int) ([]string, error) {
	if limit <= 0 {
		limit = 100
	}
	var ids []string
	err := l.r.SelectContext(ctx, &ids, `SELECT id FROM (
		SELECT id, first_seen_at FROM payments WHERE id = ?1
		UNION SELECT id, first_seen_at FROM payments WHERE reference = ?1 AND reference != ''
		UNION SELECT p.id, p.first_seen_at FROM knet_ids k JOIN payments p ON p.id = k.payment_id
			WHERE k.knet_payment_id = ?1 AND k.knet_payment_id != ''
		UNION SELECT p.id, p.first_seen_at FROM knet_ids k JOIN payments p ON p.id = k.payment_id
			WHERE k.knet_transaction_id = ?1 AND k.knet_transaction_id != ''
		UNION SELECT p.id, p.first_seen_at FROM knet_ids k JOIN payments p ON p.id = k.payment_id
			WHERE k.bank_reference = ?1 AND k.bank_reference != ''
	) ORDER BY first_seen_at DESC LIMIT ?2`, key, limit)
	if err != nil {
		return nil, fmt.Errorf("find payments by %q: %w", key, err)
	}
	return ids, nil
}

// SaveKNET records KNET's ids of payment id, and that they were asked for: a row with no id
// says Checkout.com had none to give, so the sweep does not ask again.
func (t *Tx) SaveKNET(ctx context.Context, id string, k KNETIDs) error {
	if err := k.validate(); err != nil {
		return fmt.Errorf("KNET ids of %s: %w", id, err)
	}
	return t.saveKNET(ctx, id, &k)
}

// KNETMissing lists, oldest first, captured payments first seen before before, KNET or of a
// method not known yet (webhooks carry no source), whose KNET ids were never asked for: the
// sweep fetches them in time for settlement matching.
func (l *Ledger) KNETMissing(ctx context.Context, before time.Time, limit int) ([]Payment, error) {
	rows, err := l.r.QueryxContext(ctx, `SELECT `+prefixed("p.", paymentColumns)+` FROM payments p
		LEFT JOIN knet_ids k ON k.payment_id = p.id
		WHERE p.method IN ('knet', '') AND p.captured > 0 AND k.payment_id IS NULL AND p.first_seen_at <= ?
		ORDER BY p.first_seen_at LIMIT ?`, fmtTime(before), limit)
	if err != nil {
		return nil, fmt.Errorf("payments without KNET ids: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("payments without KNET ids: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// prefixed puts prefix before each comma-separated column of cols.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}
