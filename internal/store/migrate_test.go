package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"knetrecon/internal/payment"
)

// A ledger made by an earlier release (schema 2) upgrades in place: its rows keep their values,
// payments already final are not scheduled for verification, and the next event about one (here
// a capture after expiry) schedules it.
func TestMigrateFromSchema2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	w, err := sqlx.Open("sqlite3", dsn(path, false, DefaultBusyTimeout, ""))
	if err != nil {
		t.Fatal(err)
	}
	old := &Ledger{path: path, w: w, Now: time.Now}
	if _, err := w.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version <= 2 {
			if err := old.migrate(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Exec(`INSERT INTO payments (id, status, amount, currency, seen, captured, final, first_seen_at,
		last_event_at, next_check_at, updated_at) VALUES ('pay_old', 'Expired', 1000, 'KWD', 'pending,expired', 0, 1, ?, ?, ?, ?)`,
		fmtTime(time.Now()), fmtTime(time.Now()), fmtTime(time.Now()), fmtTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	w.Close()

	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if v, err := l.SchemaVersion(ctx); err != nil || v != len(ms) {
		t.Fatalf("schema version %d (%v), want %d", v, err, len(ms))
	}
	p, err := l.Payment(ctx, "pay_old")
	if err != nil || p.Status != payment.StatusExpired || p.Amount != 1000 || p.VerifyAt != nil {
		t.Fatalf("the old row after the upgrade: %+v, %v", p, err)
	}
	at := time.Now().UTC().Add(time.Hour)
	if _, err := l.Apply(ctx, Input{EventID: "evt_late", Type: payment.EventCaptured, Origin: OriginWebhook, PaymentID: "pay_old",
		ActionID: "act_late", Amount: 1000, Currency: "KWD", OccurredAt: at, ReceivedAt: at, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if p, err = l.Payment(ctx, "pay_old"); err != nil || p.Status != payment.StatusCaptured || p.VerifyAt == nil || !p.VerifyAt.Equal(at.Add(31*time.Hour)) {
		t.Fatalf("after a capture: %+v (%v), want verify_at %s", p.Payment, err, at.Add(31*time.Hour))
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// Verify names what does not add up: a payment's totals against its postings, a posting's
// journal lines against its amount.
func TestVerifyFindsImbalance(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, in := range []Input{
		{EventID: "evt_c", Type: payment.EventCaptured, PaymentID: "pay_1", ActionID: "act_c", Amount: 1000},
		{EventID: "evt_r", Type: payment.EventRefunded, PaymentID: "pay_1", ActionID: "act_r", Amount: 400},
		{EventID: "evt_h", Type: payment.EventRefunded, PaymentID: "pay_2", ActionID: "act_h", Amount: 300},
		{EventID: "evt_3", Type: payment.EventCaptured, PaymentID: "pay_3", ActionID: "act_3", Amount: 500},
	} {
		in.Origin, in.Currency, in.OccurredAt, in.Body = OriginWebhook, "KWD", at, []byte(`{}`)
		if _, err := l.Apply(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Verify(ctx); err != nil {
		t.Fatalf("a sound ledger: %v", err)
	}
	for _, tt := range []struct{ give, undo, want string }{
		{`UPDATE payments SET refunded = 300 WHERE id = 'pay_1'`, `UPDATE payments SET refunded = 400 WHERE id = 'pay_1'`,
			"payment whose totals differ from its postings: pay_1"},
		{`UPDATE payments SET held = 0 WHERE id = 'pay_2'`, `UPDATE payments SET held = 300 WHERE id = 'pay_2'`,
			"payment whose totals differ from its postings: pay_2"},
		{`UPDATE journal SET debit = 499 WHERE action_id = 'act_3' AND debit > 0`, `UPDATE journal SET debit = 500 WHERE action_id = 'act_3' AND debit = 499`,
			"posting whose lines do not balance or do not match its amount: act_3"},
		// An absurd amount written before amounts were bounded: SUM overflows; Verify reports it
		// as a problem of the ledger instead of failing (and failing every day's report with it).
		{`UPDATE journal SET debit = 9223372036854775807 WHERE action_id = 'act_3' AND debit > 0`,
			`UPDATE journal SET debit = 500 WHERE action_id = 'act_3' AND debit > 500`, "too large to add up"},
	} {
		if _, err := l.w.Exec(tt.give); err != nil {
			t.Fatal(err)
		}
		err := l.Verify(ctx)
		if !errors.Is(err, ErrUnbalanced) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.give, err, tt.want)
		}
		if _, err := l.w.Exec(tt.undo); err != nil {
			t.Fatal(err)
		}
		if err := l.Verify(ctx); err != nil {
			t.Fatalf("after %s: %v", tt.undo, err)
		}
	}
}
