package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"knetrecon/internal/payment"
)

// SubjectProvider is the subject of the discrepancies a comparison with Checkout.com raises
// (status_mismatch, amount_mismatch, currency_mismatch), one of each per payment.
const SubjectProvider = "provider"

// ProviderView is what Checkout.com's API said of a payment when the sweep asked.
type ProviderView struct {
	// Status is the API's status, as sent.
	Status payment.Status
	// Currency is the payment's currency, as sent.
	Currency string
	// Balances reports whether the API sent balances; Captured and Refunded are its totals.
	Balances           bool
	Captured, Refunded int64
	// AskedAt is when the sweep asked: a webhook the receiver took in after it may make the two
	// differ for a moment, so the comparison waits for the next check. (The receiver's time, not
	// when this ledger applied it: every replica of the ledger must decide alike.)
	AskedAt time.Time
}

// CompareWithProvider compares the ledger's payment, after this transaction learned what the API
// taught it, with what the API says: status, captured, refunded, currency. Every difference, in
// either direction, opens a discrepancy with both sides' figures (never an overwrite); an
// agreement resolves what an earlier comparison opened, and a difference found again after a
// resolution reopens it. It returns the kinds it opened or reopened.
func (t *Tx) CompareWithProvider(ctx context.Context, paymentID string, v ProviderView) ([]payment.Kind, error) {
	var later int
	if err := t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE payment_id = ? AND origin = 'webhook' AND received_at > ?`,
		paymentID, fmtTime(v.AskedAt)).Scan(&later); err != nil {
		return nil, fmt.Errorf("compare %s: %w", paymentID, err)
	}
	if later > 0 {
		return nil, nil
	}
	var status, currency string
	var captured, refunded int64
	err := t.tx.QueryRowContext(ctx, `SELECT status, currency, captured, refunded FROM payments WHERE id = ?`, paymentID).
		Scan(&status, &currency, &captured, &refunded)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("compare %s: %w", paymentID, err)
	}
	details := map[string]any{
		"ledger_status": status, "provider_status": string(v.Status),
		"ledger_captured": captured, "ledger_refunded": refunded, "ledger_currency": currency,
		"provider_currency": v.Currency, "checked_at": v.AskedAt,
	}
	if v.Balances {
		details["provider_captured"], details["provider_refunded"] = v.Captured, v.Refunded
	}
	var opened []payment.Kind
	for _, c := range []struct {
		kind    payment.Kind
		differs bool
	}{
		{payment.KindStatusMismatch, v.Status.Known() && payment.Status(status) != v.Status},
		{payment.KindAmountMismatch, v.Balances && (captured != v.Captured || refunded != v.Refunded)},
		{payment.KindCurrencyMismatch, v.Currency != "" && currency != "" && currency != v.Currency},
	} {
		if !c.differs {
			if _, err := t.ResolveOpenSubject(ctx, paymentID, c.kind, SubjectProvider, "the ledger and Checkout.com agree again"); err != nil {
				return nil, err
			}
			continue
		}
		// Still differing after a resolution: reopened (see AddOrReopenDiscrepancy).
		added, err := t.AddOrReopenDiscrepancy(ctx, paymentID, c.kind, SubjectProvider, OriginAPI, details)
		if err != nil {
			return nil, err
		}
		if added {
			opened = append(opened, c.kind)
		}
	}
	return opened, nil
}
