package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"knetrecon/internal/checkout"
	"knetrecon/internal/events"
	"knetrecon/internal/events/eventstest"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// testWebhookKey signs the webhooks the tests publish, as the receiver's key would.
const testWebhookKey = "whsec_reconciler_test_key"

func TestConfigDefaultsAndValidate(t *testing.T) {
	if _, _, err := ParseConfig("run", nil, env(nil), nil); err == nil || !strings.Contains(err.Error(), "KNETRECON_CHECKOUT_SECRET_KEY") ||
		!strings.Contains(err.Error(), "KNETRECON_WEBHOOK_KEYS") {
		t.Fatalf("run without a Checkout.com key nor webhook keys: %v, want an error naming both variables", err)
	}
	cfg, rest, err := ParseConfig("run", nil, env(map[string]string{"KNETRECON_CHECKOUT_SECRET_KEY": "sk_test", "KNETRECON_WEBHOOK_KEYS": testWebhookKey}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://127.0.0.1:4222" || cfg.Ledger != "./data/ledger.db" || cfg.AdminAddr != "127.0.0.1:9090" || len(rest) != 0 {
		t.Fatalf("defaults %+v", cfg)
	}
	if cfg.SweepSchedule != "@every 1m" || cfg.Sweep.PendingTimeout != 7*time.Minute || cfg.Sweep.VoidGrace != 5*time.Minute ||
		!cfg.Sweep.VoidPending || cfg.Sweep.StuckAfter != 30*time.Minute || len(cfg.Sweep.Backoff) != 6 {
		t.Fatalf("sweep defaults %+v %+v", cfg.SweepSchedule, cfg.Sweep)
	}
	if cfg.ReportLocation.String() != "Asia/Kuwait" || cfg.ReportDir != filepath.Join("data", "reports") || !cfg.ReportsOn() {
		t.Fatalf("report defaults: %s %s %q", cfg.ReportLocation, cfg.ReportDir, cfg.ReportSchedule)
	}
	if want := []time.Duration{31 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour}; !slices.Equal(cfg.Sweep.VerifyAfter, want) {
		t.Fatalf("verify steps %v, want %v", cfg.Sweep.VerifyAfter, want)
	}
	for give, want := range map[string][]time.Duration{"off": nil, "90m, 2d": {90 * time.Minute, 48 * time.Hour}} {
		cfg, _, err := ParseConfig("run", nil, env(map[string]string{"KNETRECON_CHECKOUT_SECRET_KEY": "sk_test", "KNETRECON_WEBHOOK_KEYS": testWebhookKey, "KNETRECON_VERIFY_AFTER": give}), nil)
		if err != nil || !slices.Equal(cfg.Sweep.VerifyAfter, want) {
			t.Errorf("KNETRECON_VERIFY_AFTER=%q: %v %v, want %v", give, cfg.Sweep.VerifyAfter, err, want)
		}
	}
	tests := []struct {
		give map[string]string
		want string
	}{
		{map[string]string{"KNETRECON_LEDGER": ":memory:"}, "KNETRECON_LEDGER"},
		{map[string]string{"KNETRECON_ADMIN_ADDR": "nope"}, "KNETRECON_ADMIN_ADDR"},
		{map[string]string{"KNETRECON_BATCH_SIZE": "0"}, "KNETRECON_BATCH_SIZE"},
		{map[string]string{"KNETRECON_BATCH_SIZE": "x"}, "KNETRECON_BATCH_SIZE"},
		{map[string]string{"KNETRECON_MAX_DELIVER": "1"}, "KNETRECON_MAX_DELIVER"},
		{map[string]string{"KNETRECON_ACK_WAIT": "5"}, "KNETRECON_ACK_WAIT"},
		{map[string]string{"KNETRECON_BATCH_SIZE": "4000"}, "KNETRECON_MAX_ACK_PENDING"},
		{map[string]string{"KNETRECON_SWEEP_SCHEDULE": "every minute"}, "KNETRECON_SWEEP_SCHEDULE"},
		{map[string]string{"KNETRECON_SWEEP_BACKOFF": "1,x"}, "KNETRECON_SWEEP_BACKOFF"},
		{map[string]string{"KNETRECON_STUCK_AFTER": "1m"}, "KNETRECON_STUCK_AFTER"},
		{map[string]string{"KNETRECON_VERIFY_AFTER": "31h,x"}, "KNETRECON_VERIFY_AFTER"},
		{map[string]string{"KNETRECON_VERIFY_AFTER": "8d,31h"}, "KNETRECON_VERIFY_AFTER"},
		{map[string]string{"KNETRECON_VERIFY_AFTER": "0d"}, "KNETRECON_VERIFY_AFTER"},
		{map[string]string{"KNETRECON_VERIFY_PER_SWEEP": "0"}, "KNETRECON_VERIFY_PER_SWEEP"},
		{map[string]string{"KNETRECON_REPORT_TZ": "Mars/Olympus"}, "KNETRECON_REPORT_TZ"},
		{map[string]string{"KNETRECON_REPORT_SCHEDULE": "daily"}, "KNETRECON_REPORT_SCHEDULE"},
		{map[string]string{"KNETRECON_CHECKOUT_RATE_LIMIT": "500"}, "KNETRECON_CHECKOUT_RATE_LIMIT"},
		{map[string]string{"KNETRECON_CHECKOUT_URL": "ftp://x"}, "KNETRECON_CHECKOUT_URL"},
	}
	for _, tt := range tests {
		if tt.give["KNETRECON_CHECKOUT_SECRET_KEY"] == "" {
			tt.give["KNETRECON_CHECKOUT_SECRET_KEY"] = "sk_test"
		}
		_, _, err := ParseConfig("run", nil, env(tt.give), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one naming %s", tt.give, err, tt.want)
		}
	}
	// Flags after operands, flags over variables.
	var asJSON bool
	cfg, rest, err = ParseConfig("payment", []string{"pay_1", "--json", "--ledger", "/tmp/x.db"},
		env(map[string]string{"KNETRECON_LEDGER": "/tmp/y.db"}), func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "") })
	if err != nil || !asJSON || cfg.Ledger != "/tmp/x.db" || len(rest) != 1 || rest[0] != "pay_1" {
		t.Fatalf("%v %v %+v %v", err, asJSON, cfg.Ledger, rest)
	}
}

func webhookBody(id, typ, pid, action string, amount int) []byte {
	act := ""
	if action != "" {
		act = fmt.Sprintf(`"action_id":%q,`, action)
	}
	return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"created_on":"2026-03-01T10:00:00Z","data":{%s"id":%q,"amount":%d,"currency":"KWD","reference":"ORD-9","source":{"type":"knet"}}}`,
		id, typ, act, pid, amount))
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMainEndToEnd(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	pub := events.NewPublisher(js)
	ctx := context.Background()
	publish := func(b []byte, typ, id, quarantine string) {
		w := &events.Webhook{Body: b, EventID: id, EventType: typ, ReceivedAt: time.Now(), QuarantineReason: quarantine,
			Signature: checkout.Sign([]byte(testWebhookKey), b)}
		if _, err := pub.Publish(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	publish(webhookBody("evt_1", "payment_pending", "pay_1", "", 1500), "payment_pending", "evt_1", "")
	publish(webhookBody("evt_2", "payment_expired", "pay_1", "act_x", 1500), "payment_expired", "evt_2", "")
	publish(webhookBody("evt_3", "payment_captured", "pay_1", "act_c", 1500), "payment_captured", "evt_3", "")
	publish(webhookBody("evt_4", "payment_refunded", "pay_1", "act_r", 500), "payment_refunded", "evt_4", "")
	publish([]byte(`garbage`), "", "", "not JSON")

	vars := map[string]string{
		"KNETRECON_NATS_URL":       ns.ClientURL(),
		"KNETRECON_LEDGER":         filepath.Join(t.TempDir(), "data", "ledger.db"),
		"KNETRECON_WEBHOOK_KEYS":   testWebhookKey,
		"KNETRECON_ADMIN_ADDR":     "127.0.0.1:0",
		"KNETRECON_FETCH_WAIT":     "100ms",
		"KNETRECON_SWEEP_SCHEDULE": "off",
		// Nothing listens on port 1: the desk shows the receiver down.
		"KNETRECON_RECEIVER_HEALTH_URL": "http://127.0.0.1:1/readyz",
	}
	cfg, _, err := ParseConfig("run", nil, env(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, zaptest.NewLogger(t))
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		tot, err := m.Ledger().Totals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tot.Events == 4 && tot.DeadLetters == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not applied: %+v", tot)
		}
		time.Sleep(20 * time.Millisecond)
	}
	base := "http://" + m.AdminAddr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	// The desk page on the loopback admin address: the road's health, the chart, the search.
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, `<svg id="chart"`) || !strings.Contains(body, "consumer") {
		t.Fatalf("desk home %d:\n%s", code, body)
	}
	if code, body := get(t, base+"/payments/pay_1"); code != 200 || !strings.Contains(body, "payment_captured") {
		t.Fatalf("desk payment %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`knetrecon_reconciler_events_total{outcome="applied",type="payment_captured"} 1`,
		`knetrecon_reconciler_discrepancies_total{kind="captured_after_expiry"} 1`,
		`knetrecon_reconciler_dead_letters_total{cause="quarantined"} 1`,
		`knetrecon_reconciler_consumer_lag_messages`, `knetrecon_reconciler_consumer_lag_seconds`,
		`knetrecon_reconciler_apply_seconds_bucket`, `knetrecon_reconciler_duplicates_total`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Yesterday's report is written at start, as the process had none. (Which day that is
	// depends on when the test runs: any one day's pair will do.)
	deadline = time.Now().Add(15 * time.Second)
	for {
		if _, metrics = get(t, base+"/metrics"); strings.Contains(metrics, `knetrecon_reports_written_total{result="ok"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("yesterday's report not written at start:\n%s", grepLines(metrics, "knetrecon_reports"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if written, _ := filepath.Glob(filepath.Join(filepath.Dir(vars["KNETRECON_LEDGER"]), "reports", "*-*-*.*")); len(written) != 4 {
		t.Fatalf("report files %v, want one day's JSON, CSV, workbook and totals", written)
	}
	// The desk's health says the sweep is off and when the last report was written.
	if _, home := get(t, base+"/"); !strings.Contains(home, "off (KNETRECON_SWEEP_SCHEDULE=off)") || !strings.Contains(home, "written (") ||
		!strings.Contains(home, "not answering at http://127.0.0.1:1/readyz") {
		t.Fatalf("desk health:\n%s", home)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, env(vars), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, stderr := cli("payment", "pay_1", "--json")
	if code != 0 {
		t.Fatalf("payment: %d %s", code, stderr)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "status", "amount", "currency", "captured", "refunded", "postings", "events", "discrepancies"} {
		if _, ok := p[k]; !ok {
			t.Errorf("payment JSON lacks %q", k)
		}
	}
	if p["status"] != "Partially Refunded" || p["captured"] != 1500.0 || p["refunded"] != 500.0 || p["amount"] != 1500.0 {
		t.Fatalf("payment %s", out)
	}
	if d := p["discrepancies"].([]any); len(d) != 1 || d[0].(map[string]any)["kind"] != "captured_after_expiry" {
		t.Fatalf("discrepancies %v", d)
	}
	if code, out, _ = cli("payment", "pay_1"); code != 0 || !strings.Contains(out, "1.500 KWD") || !strings.Contains(out, "Partially Refunded") {
		t.Fatalf("payment text: %s", out)
	}
	if code, _, _ = cli("payment", "pay_nope"); code != 1 {
		t.Fatalf("unknown payment exit %d", code)
	}
	// By the merchant's reference.
	if code, out, stderr = cli("payment", "--reference", "ORD-9"); code != 0 || !strings.Contains(out, "pay_1") {
		t.Fatalf("payment --reference: %d %s %s", code, out, stderr)
	}
	if code, _, stderr = cli("payment", "--reference", "ORD-404"); code != 1 || !strings.Contains(stderr, "no payment") {
		t.Fatalf("payment --reference unknown: %d %s", code, stderr)
	}
	code, out, _ = cli("dlq", "list")
	if code != 0 || !strings.Contains(out, "quarantined by the receiver: not JSON") {
		t.Fatalf("dlq list: %s", out)
	}
	id := strings.Fields(out)[0]
	if code, out, _ = cli("dlq", "show", id); code != 0 || !strings.Contains(out, `"body": "garbage"`) {
		t.Fatalf("dlq show: %s", out)
	}
	if code, _, _ = cli("dlq", "replay", id); code != 1 {
		t.Fatalf("dlq replay of garbage exit %d", code)
	}
	// The junk body is discarded with a note: kept, no longer pending, in the list and the gauge
	// alike; a second discard or a replay of it is refused.
	if code, _, stderr = cli("dlq", "discard", id); code != ExitUsage || !strings.Contains(stderr, "--note is required") {
		t.Fatalf("discard without a note: %d %s", code, stderr)
	}
	if code, out, stderr = cli("dlq", "discard", id, "--note", "junk from a test"); code != 0 || !strings.Contains(out, "discarded") {
		t.Fatalf("dlq discard: %d %s %s", code, out, stderr)
	}
	if code, _, stderr = cli("dlq", "discard", id, "--note", "again"); code != 1 || !strings.Contains(stderr, "already handled") {
		t.Fatalf("second discard: %d %s", code, stderr)
	}
	if code, _, stderr = cli("dlq", "replay", id); code != 1 || !strings.Contains(stderr, "discarded") {
		t.Fatalf("replay of a discarded dead letter: %d %s", code, stderr)
	}
	if code, out, _ = cli("dlq", "list"); code != 0 || strings.Contains(out, "not JSON") {
		t.Fatalf("dlq list after discard: %s", out)
	}
	if code, out, _ = cli("dlq", "list", "--all"); code != 0 || !strings.Contains(out, "discarded by") || !strings.Contains(out, "junk from a test") {
		t.Fatalf("dlq list --all after discard: %s", out)
	}
	if l, err := store.Open(ctx, vars["KNETRECON_LEDGER"]); err != nil {
		t.Fatal(err)
	} else if dl, _, err := l.OpenCounts(ctx); l.Close() != nil || err != nil || dl != 0 {
		t.Fatalf("pending dead letters after discard: %d %v", dl, err)
	}
	for i := 0; i < 2; i++ {
		code, out, stderr = cli("replay", "--from-seq", "1")
		if code != 0 || !strings.Contains(out, "replayed 8 messages (3 of them reconcilers' facts): duplicate 4, dead-lettered 1") {
			t.Fatalf("replay: %d %s %s", code, out, stderr)
		}
	}
	if code, out, _ = cli("replay", "--since", "2000-01-01T00:00:00Z"); code != 0 || !strings.Contains(out, "replayed 8") {
		t.Fatalf("replay since: %s", out)
	}
	// People's forms: a date, a duration ago; --json everywhere data is printed.
	for _, since := range []string{"2000-01-01", "87600h", "3650d"} {
		if code, out, _ = cli("replay", "--since", since, "--json"); code != 0 || !strings.Contains(out, `"Messages": 8`) {
			t.Fatalf("replay --since %s --json: %d %s", since, code, out)
		}
	}
	if code, _, stderr = cli("replay", "--since", "last tuesday"); code != ExitUsage || !strings.Contains(stderr, "a duration ago") {
		t.Fatalf("replay --since nonsense: %d %s", code, stderr)
	}
	if code, out, _ = cli("migrate", "--json"); code != 0 || !strings.Contains(out, `"schema_version": 14`) {
		t.Fatalf("migrate --json: %d %s", code, out)
	}
	if code, out, _ = cli("dlq", "list", "--all", "--json"); code != 0 || !strings.Contains(out, `"reason"`) {
		t.Fatalf("dlq list --json: %d %s", code, out)
	}
	if code, _, stderr = cli("discrepancies", "--kind", "bogus"); code != ExitUsage || !strings.Contains(stderr, "amount_mismatch") {
		t.Fatalf("discrepancies --kind bogus: %d %s", code, stderr)
	}

	// Any day's report can be asked for. The capture and the refund Checkout.com made on
	// 2026-03-01 were posted today: they count in today's report (as late), not in that day's.
	kuwait, _ := time.LoadLocation("Asia/Kuwait")
	today := time.Now().In(kuwait).Format(time.DateOnly)
	code, out, stderr = cli("report", "--date", today, "--format", "json")
	var daily report.Daily
	if code != 0 || json.Unmarshal([]byte(out), &daily) != nil {
		t.Fatalf("report: %d %s %s", code, out, stderr)
	}
	if len(daily.Totals) != 1 || daily.Totals[0].Captured != 1500 || daily.Totals[0].Refunded != 500 || daily.Totals[0].Net != 1000 ||
		!daily.Balanced || daily.TimeZone != "Asia/Kuwait" {
		t.Fatalf("report %+v", daily)
	}
	if code, out, _ = cli("report", "--date", today, "--format", "csv"); code != 0 || strings.Count(out, "\n") != 3 { // header, 2 postings (the totals have their own file)
		t.Fatalf("report csv: %s", out)
	}
	if code, out, _ = cli("report", "--date", today); code != 0 || !strings.Contains(out, "net 1.000") {
		t.Fatalf("report text: %s", out)
	}
	if code, out, _ = cli("report", "--date", "2026-03-01", "--format", "json"); code != 0 || strings.Contains(out, `"net"`) {
		t.Fatalf("the report of 2026-03-01 counts money posted today: %s", out)
	}
	dir := t.TempDir()
	if code, _, stderr = cli("report", "--date", today, "--out", dir); code != 1 || !strings.Contains(stderr, today+" is not over") {
		t.Fatalf("report --out of a day not over: %d %s", code, stderr)
	}
	if code, out, _ = cli("report", "--date", today, "--out", dir, "--force"); code != 0 || !strings.Contains(out, filepath.Join(dir, today+".csv")) {
		t.Fatalf("report --out --force: %s", out)
	}
	if code, _, stderr = cli("report", "--date", "1 March"); code != ExitUsage || !strings.Contains(stderr, "YYYY-MM-DD") {
		t.Fatalf("report with a bad date: %d %s", code, stderr)
	}
	if code, _, _ = cli("report", "--format", "xml"); code != ExitUsage {
		t.Fatalf("report --format xml exit %d", code)
	}
	// Discrepancies: listed, resolved by hand with a note, then gone from the open list.
	var open []store.Discrepancy
	if code, out, _ = cli("discrepancies", "--json"); code != 0 || json.Unmarshal([]byte(out), &open) != nil ||
		len(open) != 1 || open[0].Kind != "captured_after_expiry" {
		t.Fatalf("discrepancies: %d %s", code, out)
	}
	did := fmt.Sprint(open[0].ID)
	if code, _, stderr = cli("resolve", did); code != ExitUsage || !strings.Contains(stderr, "--note is required") {
		t.Fatalf("resolve without a note: %d %s", code, stderr)
	}
	if code, out, _ = cli("resolve", did, "--note", "customer confirmed, ticket 42"); code != 0 {
		t.Fatalf("resolve: %d %s", code, out)
	}
	if code, _, stderr = cli("resolve", did, "--note", "again"); code != 1 || !strings.Contains(stderr, "resolved already") {
		t.Fatalf("resolve twice: %d %s", code, stderr)
	}
	if code, out, _ = cli("discrepancies"); code != 0 || !strings.Contains(out, "none: no discrepancies") {
		t.Fatalf("open after resolving: %s", out)
	}
	if code, out, _ = cli("discrepancies", "--all", "--kind", "captured_after_expiry"); code != 0 ||
		!strings.Contains(out, "by hand (") || !strings.Contains(out, "): customer confirmed, ticket 42") {
		t.Fatalf("discrepancies --all: %s", out)
	}
	if code, out, _ = cli("migrate"); code != 0 || !strings.Contains(out, "at schema version") {
		t.Fatalf("migrate: %s", out)
	}
	if code, _, _ = cli("bogus"); code != 2 {
		t.Fatalf("bogus exit %d", code)
	}

	// The ledger, its online backup, and two rebuilds (from the stream alone, and from the backup
	// plus the stream after it) hold the same payments, postings and discrepancies.
	digest := func(ledger string) store.Digest {
		t.Helper()
		l, err := store.Open(ctx, ledger)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d, err := l.Digest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	wantDigest := digest(vars["KNETRECON_LEDGER"])
	if wantDigest.Payments != 1 || wantDigest.Postings != 2 || wantDigest.Discrepancies != 1 || wantDigest.StreamSeq == 0 {
		t.Fatalf("digest %+v", wantDigest)
	}
	if code, out, _ = cli("digest"); code != 0 || !strings.Contains(out, wantDigest.SHA256) {
		t.Fatalf("digest: %s", out)
	}
	bdir := t.TempDir()
	backup := filepath.Join(bdir, "backup.db")
	if code, out, stderr = cli("backup", backup); code != 0 || !strings.Contains(out, fmt.Sprintf("up to seq %d", wantDigest.StreamSeq)) {
		t.Fatalf("backup: %d %s %s", code, out, stderr)
	}
	if code, _, stderr = cli("rebuild"); code != 1 || !strings.Contains(stderr, "--force") {
		t.Fatalf("rebuild over a ledger without --force: %d %s", code, stderr)
	}
	for name, args := range map[string][]string{"stream.db": {"rebuild"}, "restored.db": {"rebuild", "--from-backup", backup}} {
		other := maps.Clone(vars)
		other["KNETRECON_LEDGER"] = filepath.Join(bdir, name)
		var out, errOut bytes.Buffer
		if code := run(ctx, args, env(other), &out, &errOut); code != 0 || !strings.Contains(out.String(), "rebuilt from seq") {
			t.Fatalf("%v: %d %s %s", args, code, out.String(), errOut.String())
		}
		if got := digest(other["KNETRECON_LEDGER"]); !got.Same(wantDigest) {
			a, err := store.Open(ctx, vars["KNETRECON_LEDGER"])
			if err != nil {
				t.Fatal(err)
			}
			b, err := store.Open(ctx, other["KNETRECON_LEDGER"])
			if err != nil {
				t.Fatal(err)
			}
			t.Fatalf("%v: digest differs:\n%s", args, strings.Join(storetest.DiffLedgers(t, a, b), "\n"))
		}
	}
	// The stream loses its first messages (past its max age): a rebuild from the stream alone is
	// refused, naming the backup it needs; from the backup it still works.
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(3)); err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		args []string
		want string
	}{{[]string{"rebuild"}, "rebuild from a backup"}, {[]string{"rebuild", "--from-backup", backup}, "rebuilt from seq"}} {
		other := maps.Clone(vars)
		other["KNETRECON_LEDGER"] = filepath.Join(bdir, fmt.Sprintf("after-purge-%d.db", i))
		var out, errOut bytes.Buffer
		code := run(ctx, tt.args, env(other), &out, &errOut)
		if got := out.String() + errOut.String(); !strings.Contains(got, tt.want) || (code == 0) != (i == 1) {
			t.Fatalf("%v after the purge: %d %s", tt.args, code, got)
		}
	}
}

// TestReadOnlyCommandsNeverCreateALedger: run from the wrong folder (or with a mistyped
// KNETRECON_LEDGER), the commands that read the ledger fail with an error naming the variable and
// create nothing: no false all-clear from a ledger they just made.
func TestReadOnlyCommandsNeverCreateALedger(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere", "ledger.db")
	vars := map[string]string{"KNETRECON_LEDGER": missing}
	for _, args := range [][]string{{"payment", "pay_1"}, {"stuck"}, {"discrepancies"}, {"report", "--date", "2026-11-30"},
		{"dlq", "list"}, {"resolve", "1", "--note", "x"}} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, env(vars), &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "KNETRECON_LEDGER") || strings.Contains(out.String(), "No ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
		if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v created the ledger: %v", args, err)
		}
		if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%v created the ledger's folder: %v", args, err)
		}
	}
}

// TestReplayWithNATSUnreachable: replay against a NATS that is not there says so, naming the
// variable to check, instead of a client buffer error.
func TestReplayWithNATSUnreachable(t *testing.T) {
	vars := map[string]string{"KNETRECON_LEDGER": filepath.Join(t.TempDir(), "ledger.db"), "KNETRECON_WEBHOOK_KEYS": testWebhookKey,
		"KNETRECON_NATS_URL": "nats://127.0.0.1:1"}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"replay", "--from-seq", "1"}, env(vars), &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "NATS not reachable") || !strings.Contains(errOut.String(), "KNETRECON_NATS_URL") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

// TestDeskProtectedOffLoopback: on an address that is not loopback the page is off without
// KNETRECON_DESK_TOKEN, and asks for it with one; /metrics and the probes stay open.
func TestDeskProtectedOffLoopback(t *testing.T) {
	ns := eventstest.MustRunNATS(t)
	_, js := eventstest.MustConnect(t, ns)
	eventstest.MustEnsureStream(t, js)
	for _, token := range []string{"", "desk-secret"} {
		vars := map[string]string{"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_LEDGER": filepath.Join(t.TempDir(), "ledger.db"),
			"KNETRECON_ADMIN_ADDR": "0.0.0.0:0", "KNETRECON_SWEEP_SCHEDULE": "off", "KNETRECON_REPORT_SCHEDULE": "off",
			"KNETRECON_WEBHOOK_KEYS": testWebhookKey, "KNETRECON_DESK_TOKEN": token}
		cfg, _, err := ParseConfig("run", nil, env(vars), nil)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMain(cfg, zaptest.NewLogger(t))
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(m.AdminAddr())
		base := "http://127.0.0.1:" + port
		code, _ := get(t, base+"/")
		switch {
		case token == "" && code != 404:
			t.Errorf("no token: the page answered %d", code)
		case token != "" && code != 401:
			t.Errorf("token, none given: %d", code)
		}
		if token != "" {
			req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
			req.SetBasicAuth("finance", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("with the token: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
		}
		if code, _ := get(t, base+"/metrics"); code != 200 {
			t.Errorf("metrics behind the token: %d", code)
		}
		_ = m.Close()
	}
}
