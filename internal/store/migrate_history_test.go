package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"knetrecon/internal/payment"
)

// A ledger from before discrepancies had a history upgrades in place: a resolution by hand names
// its operator in resolved_by (read from its note), the reconciler's own resolutions name none.
func TestMigrateResolvedBy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	w, err := sqlx.Open("sqlite3", dsn(path, false, DefaultBusyTimeout, ""))
	if err != nil {
		t.Fatal(err)
	}
	old := &Ledger{path: path, w: w, Now: func() time.Time { return t0Migrate }}
	if _, err := w.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if strings.HasSuffix(m.name, "_discrepancy_history.sql") {
			break
		}
		if err := old.migrate(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	at := fmtTime(t0Migrate)
	for _, r := range []struct{ kind, resolution string }{
		{"stuck", "by hand (alice): customer called"},
		{"webhook_missing", "the webhook arrived after all"},
	} {
		if _, err := w.Exec(`INSERT INTO discrepancies (payment_id, kind, subject, details, detected_at, resolved_at, resolution)
			VALUES ('pay_1', ?, '', '{}', ?, ?, ?)`, r.kind, at, at, r.resolution); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ds, err := l.Discrepancies(ctx, DiscrepancyFilter{All: true})
	if err != nil || len(ds) != 2 {
		t.Fatalf("discrepancies %+v, %v", ds, err)
	}
	by := map[payment.Kind]string{}
	for _, d := range ds {
		by[d.Kind] = d.ResolvedBy
		if n := len(d.History); n != 2 || d.History[1].By != d.ResolvedBy || d.History[1].Note != d.Resolution {
			t.Errorf("%s history %+v", d.Kind, d.History)
		}
	}
	if by[payment.KindStuck] != "alice" || by[payment.KindWebhookMissing] != "" {
		t.Fatalf("resolved_by after the upgrade: %v", by)
	}
}

var t0Migrate = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
