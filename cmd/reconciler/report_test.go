package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/report"
)

// TestFailedReportRetriedUntilWritten: the daily report cannot be written (its directory is a
// file); the day stays unwritten (gauge 1, the alert stays on) instead of being forgotten, and the
// next retry writes it once the cause is fixed.
func TestFailedReportRetriedUntilWritten(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	dir := t.TempDir()
	blocked := filepath.Join(dir, "reports")
	if err := os.WriteFile(blocked, []byte("a file where the report folder should be"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := ParseConfig("run", nil, env(map[string]string{
		"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_LEDGER": filepath.Join(dir, "ledger.db"), "KNETRECON_ADMIN_ADDR": "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT": "100ms", "KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_WEBHOOK_KEYS": testWebhookKey,
		"KNETRECON_REPORT_DIR": blocked}), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	poll(t, "the start-up report to fail", func() bool { return testutil.ToFloat64(m.reports.unwritten) == 1 })
	m.reports.retry() // still blocked: still unwritten
	if got := testutil.ToFloat64(m.reports.unwritten); got != 1 {
		t.Fatalf("unwritten %v after a failed retry", got)
	}
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	m.reports.retry()
	if got := testutil.ToFloat64(m.reports.unwritten); got != 0 {
		t.Fatalf("unwritten %v after the cause was fixed", got)
	}
	yesterday := report.Yesterday(time.Now(), cfg.ReportLocation)
	if _, err := os.Stat(filepath.Join(blocked, yesterday+".json")); err != nil {
		t.Fatalf("report not written by the retry: %v", err)
	}
}
