package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/desk"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
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

// TestReportWaitsForTheLedgerToHoldTheDay: the stream holds 20.000 KWD stored today; the
// reconciler starts after midnight (its clock) with its consumer held back. The start's catch-up
// must not write today's report with 0: it waits, and the desk, /metrics and the one-shot command
// say so. Once the consumer applies the stream, the report is written and ties out to the ledger.
// A capture landing on the day afterwards is written as revision 2 beside revision 1, which is
// kept, the change listed.
func TestReportWaitsForTheLedgerToHoldTheDay(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	ctx := context.Background()
	pub := events.NewPublisher(js)
	capture := func(n, amount int) {
		id := fmt.Sprintf("evt_c%d", n)
		b := webhookBody(id, "payment_captured", fmt.Sprintf("pay_%d", n), fmt.Sprintf("act_%d", n), amount)
		w := &events.Webhook{Body: b, EventID: id, EventType: "payment_captured", ReceivedAt: time.Now(),
			Signature: checkout.Sign([]byte(testWebhookKey), b)}
		if _, err := pub.Publish(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// A zone where it is about midday now: what the stream stores during the test counts on today.
	loc := time.FixedZone("Midday", (12-time.Now().UTC().Hour())*3600)
	today := time.Now().In(loc)
	date := today.Format(time.DateOnly)
	capture(1, 10000)
	capture(2, 10000) // 20.000 KWD, stored today (stream time)

	// The consumer is held back: every write waits until released.
	release := make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	prevHook, prevPoll := chaosHook, reportPoll
	chaosHook = func(p *reconcile.Processor, _ *zap.Logger) { p.BeforeEvent = func(store.Input) { <-release } }
	reportPoll = 20 * time.Millisecond
	t.Cleanup(func() { chaosHook, reportPoll = prevHook, prevPoll })

	dir := t.TempDir()
	vars := map[string]string{
		"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_LEDGER": filepath.Join(dir, "ledger.db"), "KNETRECON_ADMIN_ADDR": "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT": "100ms", "KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_WEBHOOK_KEYS": testWebhookKey,
		"KNETRECON_REPORT_DIR": filepath.Join(dir, "reports")}
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ReportLocation = loc
	// The reconciler's clock: 00:15 tomorrow, today's report due.
	var mu sync.Mutex
	now := time.Date(today.Year(), today.Month(), today.Day()+1, 0, 15, 0, 0, loc)
	m := NewMain(cfg, zaptest.NewLogger(t))
	m.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer let()

	poll(t, "today's report to wait for the ledger", func() bool { return testutil.ToFloat64(m.reports.waiting) == 1 })
	first := filepath.Join(cfg.ReportDir, date+".json")
	if _, err := os.Stat(first); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the report was written before the ledger held the day: %v", err)
	}
	mu.Lock()
	now = now.Add(10 * time.Minute)
	mu.Unlock()
	check := reportsCheck(t, m)
	if check.OK || !strings.Contains(check.Detail, date+" since") ||
		!strings.Contains(check.Detail, "waiting for the ledger to apply the stream up to seq 2") || !strings.Contains(check.Detail, "applied up to seq 0") {
		t.Fatalf("the desk while waiting: %+v", check)
	}
	if _, page := get(t, "http://"+m.AdminAddr()+"/"); !strings.Contains(page, "waiting for the ledger to apply the stream up to seq 2") {
		t.Fatal("the desk page does not show the wait")
	}
	_, metrics := get(t, "http://"+m.AdminAddr()+"/metrics")
	for _, want := range []string{"knetrecon_reports_waiting 1", "knetrecon_reports_wait_seconds 600", "knetrecon_reports_unwritten 0"} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The one-shot command will not write a day its ledger does not hold. (A ledger of its own
	// that nothing applies: the running one is held inside its write transaction here.)
	reportHoldWait = 300 * time.Millisecond
	t.Cleanup(func() { reportHoldWait = 10 * time.Second })
	cliVars := maps.Clone(vars)
	cliVars["KNETRECON_REPORT_TZ"] = "UTC"
	cliVars["KNETRECON_LEDGER"] = filepath.Join(dir, "behind.db")
	utcToday, utcYesterday := time.Now().UTC().Format(time.DateOnly), time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, env(cliVars), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	byHand := filepath.Join(dir, "by-hand")
	if code, _, stderr := cli("migrate"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	if code, _, stderr := cli("report", "--date", utcYesterday, "--out", byHand); code != 1 ||
		!strings.Contains(stderr, "the ledger does not hold "+utcYesterday+" yet: waiting for the ledger to apply the stream up to seq 2") ||
		!strings.Contains(stderr, "--force") {
		t.Fatalf("report --out of a day the ledger does not hold: %d %s", code, stderr)
	}
	if code, _, stderr := cli("report", "--date", utcToday, "--out", byHand); code != 1 || !strings.Contains(stderr, utcToday+" is not over") {
		t.Fatalf("report --out of a day not over: %d %s", code, stderr)
	}
	if code, _, stderr := cli("report", "--date", utcYesterday); code != 0 || !strings.Contains(stderr, "warning: the ledger does not hold") {
		t.Fatalf("report printed: %d %s", code, stderr)
	}
	if code, out, stderr := cli("report", "--date", utcYesterday, "--out", byHand, "--force"); code != 0 || !strings.Contains(out, utcYesterday+".json") {
		t.Fatalf("report --out --force: %d %s %s", code, out, stderr)
	}

	// The consumer catches up: the report is written, and ties out to the ledger.
	let()
	poll(t, "today's report written", func() bool {
		return testutil.ToFloat64(m.reports.written.WithLabelValues("ok")) == 1 && m.lastReport.Load() != nil
	})
	written := readDaily(t, first)
	if len(written.Totals) != 1 || written.Totals[0].Captured != 20000 || written.Totals[0].Net != 20000 || len(written.Postings) != 2 ||
		written.StreamPosition != 2 || written.Revision != 1 {
		t.Fatalf("written %+v (%d postings, at seq %d)", written.Totals, len(written.Postings), written.StreamPosition)
	}
	again, err := report.Build(ctx, m.Ledger(), date, loc, now)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Totals, written.Totals) {
		t.Fatalf("the ledger %+v, the report %+v", again.Totals, written.Totals)
	}
	if testutil.ToFloat64(m.reports.waiting) != 0 || m.reports.waitedSeconds() != 0 {
		t.Fatal("the wait is not over on /metrics")
	}
	if check := reportsCheck(t, m); !check.OK || !strings.Contains(check.Detail, date+" written (2 postings") {
		t.Fatalf("the desk after: %+v", check)
	}
	cliVars["KNETRECON_LEDGER"] = vars["KNETRECON_LEDGER"]
	if code, _, stderr := cli("report", "--date", utcYesterday, "--out", byHand); code != 0 {
		t.Fatalf("report --out once the ledger holds the day: %d %s", code, stderr)
	}

	// A capture lands on the day after its report was written: a new revision, the first kept.
	original, _ := os.ReadFile(first)
	capture(3, 5000)
	poll(t, "the capture applied", func() bool { p, _ := m.Ledger().Position(ctx); return p == 3 })
	m.reports.retry() // the job every reportRetry
	second := filepath.Join(cfg.ReportDir, date+".r2.json")
	r2 := readDaily(t, second)
	if r2.Revision != 2 || r2.Totals[0].Net != 25000 || r2.Changes == nil || r2.Changes.PreviousRevision != 1 ||
		r2.Changes.TotalsBefore[0].Net != 20000 || r2.Changes.PreviousStreamPosition != 2 || len(r2.Changes.PostingsAdded) != 1 ||
		r2.Changes.PostingsAdded[0].ActionID != "act_3" || len(r2.Changes.PostingsRemoved) != 0 {
		t.Fatalf("revision 2: %+v changes %+v", r2.Totals, r2.Changes)
	}
	if now, _ := os.ReadFile(first); !bytes.Equal(now, original) {
		t.Fatal("revision 1 was rewritten")
	}
	for _, ext := range []string{".csv", ".xlsx"} {
		for _, name := range []string{date, date + ".r2"} {
			if _, err := os.Stat(filepath.Join(cfg.ReportDir, name+ext)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if testutil.ToFloat64(m.reports.revisions) != 1 || !strings.Contains(reportsCheck(t, m).Detail, date+" revision 2 written (1 postings added") {
		t.Fatalf("revision not counted or shown: %+v", reportsCheck(t, m))
	}
	m.reports.retry() // the same money: nothing more
	if _, err := os.Stat(filepath.Join(cfg.ReportDir, date+".r3.json")); !errors.Is(err, fs.ErrNotExist) || testutil.ToFloat64(m.reports.revisions) != 1 {
		t.Fatalf("a revision with the same money: %v", err)
	}
}

func reportsCheck(t *testing.T, m *Main) desk.Check {
	t.Helper()
	for _, c := range m.health(context.Background()) {
		if c.Name == "reports" {
			return c
		}
	}
	t.Fatal("no reports check on the desk")
	return desk.Check{}
}

func readDaily(t *testing.T, path string) report.Daily {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d report.Daily
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d
}
