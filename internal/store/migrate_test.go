package store

import (
	"context"
	"path/filepath"
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
	w, err := sqlx.Open("sqlite3", dsn(path, false, DefaultBusyTimeout))
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
	l.VerifyAfter = 31 * time.Hour
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
