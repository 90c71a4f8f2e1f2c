package desk_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/desk"
	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile/reconciletest"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
	"knetrecon/internal/store/storetest"
)

var kuwait = time.FixedZone("Asia/Kuwait", 3*3600)

func event(id, typ, pid, action string, amount int64, at time.Time) store.Input {
	return store.Input{EventID: id, Type: typ, Origin: store.OriginWebhook, PaymentID: pid, ActionID: action,
		Amount: amount, Currency: "KWD", Reference: "ORD-" + pid, Method: "knet", OccurredAt: at, ReceivedAt: at,
		Body: []byte(fmt.Sprintf(`{"id":%q}`, id))}
}

type page struct {
	srv    *httptest.Server
	client *http.Client
	ledger *store.Ledger
}

func newPage(t *testing.T, opts ...func(*desk.Config, *store.Ledger)) *page {
	t.Helper()
	l := storetest.MustOpenLedger(t)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	l.Now = func() time.Time { return now }
	ctx := context.Background()
	for _, in := range []store.Input{
		event("evt_1", payment.EventPending, "pay_1", "", 2500, now.Add(-2*time.Hour)),
		event("evt_2", payment.EventCaptured, "pay_1", "act_1", 2500, now.Add(-time.Hour)),
		event("evt_3", payment.EventExpired, "pay_2", "", 700, now.Add(-3*24*time.Hour)),
		event("evt_4", payment.EventCaptured, "pay_2", "act_2", 700, now.Add(-3*24*time.Hour+time.Minute)), // captured_after_expiry
	} {
		if _, err := l.Apply(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	cfg := desk.Config{Ledger: l, Location: kuwait, Now: func() time.Time { return now },
		Health: func(context.Context) []desk.Check { return []desk.Check{{Name: "consumer", OK: true, Detail: "lag 0"}} }}
	cfg.Operate(reconciletest.MustRunRoad(t, l, nil).Ops)
	for _, o := range opts {
		o(&cfg, l)
	}
	d, err := desk.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	d.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &page{srv: srv, client: client, ledger: l}
}

func (p *page) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := p.client.Get(p.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHomeSearchPaymentResolveReport(t *testing.T) {
	p := newPage(t)
	code, home, _ := p.get(t, "/")
	if code != 200 || !strings.Contains(home, `<form action="/search" method="get"`) || !strings.Contains(home, `<svg id="chart"`) ||
		strings.Count(home, "<rect ") != 30 || !strings.Contains(home, `captured_after_expiry</a></td><td class="num">1</td><td>0.700 KWD</td>`) || !strings.Contains(home, "lag 0") {
		t.Fatalf("home %d:\n%s", code, home)
	}
	// Today's bar follows new money; the closed days come from the chart's cache.
	if !strings.Contains(home, "2026-12-01: 3.200 KWD") || !strings.Contains(home, "2026-11-28: 0.000 KWD") {
		t.Fatalf("chart before:\n%s", home)
	}
	if _, err := p.ledger.Apply(context.Background(), event("evt_5", payment.EventCaptured, "pay_5", "act_5", 1_125, time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	if _, home, _ = p.get(t, "/"); !strings.Contains(home, "2026-12-01: 4.325 KWD") {
		t.Fatalf("chart after a capture today:\n%s", home)
	}
	// Search by merchant reference: one payment, straight to its page.
	code, _, h := p.get(t, "/search?q="+url.QueryEscape("ORD-pay_1"))
	if code != http.StatusSeeOther || h.Get("Location") != "/payments/pay_1" {
		t.Fatalf("search: %d %s", code, h.Get("Location"))
	}
	if code, body, _ := p.get(t, "/search?q=nothing-like-it"); code != 200 || !strings.Contains(body, "none: no payment") {
		t.Fatalf("search none: %d", code)
	}
	code, pay, _ := p.get(t, "/payments/pay_2")
	if code != 200 || !strings.Contains(pay, "payment_captured") || !strings.Contains(pay, "payment_expired") || !strings.Contains(pay, "captured_after_expiry") {
		t.Fatalf("payment page %d:\n%s", code, pay)
	}
	if code, _, _ := p.get(t, "/payments/pay_nope"); code != 404 {
		t.Fatalf("unknown payment: %d", code)
	}
	// Resolve through the form: refused without the page's token or from another site.
	id := regexp.MustCompile(`/discrepancies/(\d+)/resolve`).FindStringSubmatch(pay)[1]
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(pay)[1]
	post := func(form url.Values, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, p.srv.URL+"/discrepancies/"+id+"/resolve", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(url.Values{"note": {"x"}}, ""); c != 403 {
		t.Fatalf("without the token: %d", c)
	}
	if c := post(url.Values{"note": {"x"}, "csrf": {csrf}}, "https://evil.example"); c != 403 {
		t.Fatalf("from another site: %d", c)
	}
	if c := post(url.Values{"csrf": {csrf}}, p.srv.URL); c != 400 {
		t.Fatalf("without a note: %d", c)
	}
	// Asked first: the answer is a page saying what it will do; nothing is resolved yet.
	if c := post(url.Values{"note": {"customer refunded by hand"}, "csrf": {csrf}, "back": {"/payments/pay_2"}}, p.srv.URL); c != http.StatusOK {
		t.Fatalf("resolve unconfirmed: %d", c)
	}
	if ds, _ := p.ledger.Discrepancies(context.Background(), store.DiscrepancyFilter{PaymentID: "pay_2"}); len(ds) != 1 {
		t.Fatalf("resolved without confirmation: %+v", ds)
	}
	if c := post(url.Values{"note": {"customer refunded by hand"}, "csrf": {csrf}, "back": {"/payments/pay_2"}, "confirm": {"yes"}}, p.srv.URL); c != http.StatusSeeOther {
		t.Fatalf("resolve: %d", c)
	}
	if _, pay, _ = p.get(t, "/payments/pay_2"); !strings.Contains(pay, "by hand (desk): customer refunded by hand") {
		t.Fatalf("not resolved:\n%s", pay)
	}
	if c := post(url.Values{"note": {"again"}, "csrf": {csrf}, "confirm": {"yes"}}, p.srv.URL); c != http.StatusConflict {
		t.Fatalf("resolve twice: %d", c)
	}
	// Kept in the audit trail with who and the note, shown on the home page.
	if acts, err := p.ledger.Actions(context.Background(), "discrepancy:"+id, 0); err != nil || len(acts) != 1 || acts[0].Who != "desk" ||
		acts[0].Action != "resolve" || acts[0].Note != "customer refunded by hand" {
		t.Fatalf("audit trail %+v %v", acts, err)
	}
	if _, home, _ = p.get(t, "/"); !strings.Contains(home, "<td>resolve</td><td>discrepancy:"+id+"</td><td>customer refunded by hand</td>") {
		t.Fatalf("home lacks the action:\n%s", home)
	}
	// The day's report to download.
	code, csv, h := p.get(t, "/reports/2026-12-01.csv")
	if code != 200 || !strings.HasPrefix(csv, "\ufeffdate,line") || !strings.Contains(h.Get("Content-Disposition"), "knetrecon-2026-12-01.csv") {
		t.Fatalf("report: %d %q %v", code, csv, h)
	}
	if code, _, _ := p.get(t, "/reports/2026-12-01.exe"); code != 404 {
		t.Fatalf("report .exe: %d", code)
	}
}

// post sends a form from the page's own origin with its CSRF token taken from page html.
func (p *page) post(t *testing.T, path, html string, form url.Values) (int, http.Header) {
	t.Helper()
	if m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(html); m != nil {
		form.Set("csrf", m[1])
	}
	req, _ := http.NewRequest(http.MethodPost, p.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.srv.URL)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestListsRawBodyDeadLettersRange(t *testing.T) {
	p := newPage(t)
	ctx := context.Background()

	// Lists: by open discrepancy kind, by status, by day, and paged.
	if code, body, _ := p.get(t, "/payments?kind=captured_after_expiry"); code != 200 || !strings.Contains(body, `href="/payments/pay_2"`) || strings.Contains(body, `href="/payments/pay_1"`) {
		t.Fatalf("by kind %d:\n%s", code, body)
	}
	if code, body, _ := p.get(t, "/payments?status=Pending"); code != 200 || !strings.Contains(body, "none: no payments match") {
		t.Fatalf("by status %d:\n%s", code, body)
	}
	if code, _, _ := p.get(t, "/payments?status=Bogus"); code != 400 {
		t.Fatalf("unknown status: %d", code)
	}
	if code, body, _ := p.get(t, "/payments?day=2026-11-28"); code != 200 || !strings.Contains(body, `href="/payments/pay_2"`) || strings.Contains(body, `href="/payments/pay_1"`) {
		t.Fatalf("by day %d:\n%s", code, body)
	}
	before := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC).Format(time.RFC3339Nano) // pay_1's first event
	if code, body, _ := p.get(t, "/payments?before="+url.QueryEscape(before)); code != 200 || !strings.Contains(body, `href="/payments/pay_2"`) || strings.Contains(body, `href="/payments/pay_1"`) {
		t.Fatalf("paged %d:\n%s", code, body)
	}
	// The exact body an event was applied from, as inert text.
	code, raw, h := p.get(t, "/payments/pay_1/events/evt_2")
	if code != 200 || raw != `{"id":"evt_2"}` || h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("raw body %d %q %v", code, raw, h)
	}
	if code, _, _ := p.get(t, "/payments/pay_1/events/evt_nope"); code != 404 {
		t.Fatalf("unknown event: %d", code)
	}

	// Dead letters: one that now applies, one to set aside.
	good := []byte(`{"id":"evt_9","type":"payment_captured","version":"1.0.1","created_on":"2026-12-01T08:30:00Z",` +
		`"data":{"id":"pay_9","action_id":"act_9","amount":1250,"currency":"KWD","reference":"ORD-9","source":{"type":"knet"}}}`)
	var ids []int64
	if err := p.ledger.Update(ctx, func(tx *store.Tx) error {
		for _, b := range [][]byte{good, []byte("not json")} {
			id, err := tx.AddDeadLetter(ctx, store.DeadLetter{StreamSeq: uint64(len(ids) + 7), Subject: "cko.webhooks.payment_captured",
				Reason: "decoder bug", Deliveries: 1, Body: b, CreatedAt: time.Date(2026, 12, 1, 8, 31, 0, 0, time.UTC)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	code, list, _ := p.get(t, "/dead-letters")
	if code != 200 || strings.Count(list, "Replay…</button>") != 2 || !strings.Contains(list, "decoder bug") {
		t.Fatalf("dead letters %d:\n%s", code, list)
	}
	withToken := list
	if c, h := p.post(t, fmt.Sprintf("/dead-letters/%d/replay", ids[0]), list, url.Values{"note": {"decoder fixed in 1.4"}, "confirm": {"yes"}}); c != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "applied") {
		t.Fatalf("replay: %d %v", c, h)
	}
	if pay, err := p.ledger.Payment(ctx, "pay_9"); err != nil || pay.Captured != 1250 {
		t.Fatalf("replayed capture: %+v %v", pay, err)
	}
	if c, _ := p.post(t, fmt.Sprintf("/dead-letters/%d/discard", ids[1]), list, url.Values{}); c != 400 {
		t.Fatalf("discard without a note: %d", c)
	}
	if c, _ := p.post(t, fmt.Sprintf("/dead-letters/%d/discard", ids[1]), "", url.Values{"note": {"x"}}); c != 403 {
		t.Fatalf("discard without the token: %d", c)
	}
	if c, _ := p.post(t, fmt.Sprintf("/dead-letters/%d/discard", ids[1]), list, url.Values{"note": {"garbage from a test tool"}, "confirm": {"yes"}}); c != http.StatusSeeOther {
		t.Fatalf("discard: %d", c)
	}
	if c, _ := p.post(t, fmt.Sprintf("/dead-letters/%d/discard", ids[1]), list, url.Values{"note": {"again"}, "confirm": {"yes"}}); c != http.StatusConflict {
		t.Fatalf("discard twice: %d", c)
	}
	acts, err := p.ledger.Actions(ctx, "", 0)
	if err != nil || len(acts) != 2 || acts[1].Action != "replay" || acts[1].Note != "decoder fixed in 1.4" || !strings.HasPrefix(acts[1].Result, "applied on pay_9") ||
		acts[0].Action != "discard" || acts[0].Subject != fmt.Sprintf("dead_letter:%d", ids[1]) {
		t.Fatalf("audit trail %+v %v", acts, err)
	}
	if _, list, _ = p.get(t, "/dead-letters"); !strings.Contains(list, "none: no dead letters pending") {
		t.Fatalf("still pending:\n%s", list)
	}
	if _, list, _ = p.get(t, "/dead-letters?all=1"); !strings.Contains(list, "discarded by desk: garbage from a test tool") || !strings.Contains(list, "replayed: applied") {
		t.Fatalf("all:\n%s", list)
	}
	_, pay1, _ := p.get(t, "/payments/pay_1")
	if strings.Contains(pay1, "/check") {
		t.Fatalf("a check button without a Checkout.com key:\n%s", pay1)
	}
	if c, _ := p.post(t, "/payments/pay_1/check", withToken, url.Values{}); c != 404 {
		t.Fatalf("check without a Checkout.com key: %d", c)
	}

	// A range of days as one download.
	code, csv, h := p.get(t, "/reports/range?from=2026-11-28&to=2026-12-01&format=csv")
	if code != 200 || !strings.Contains(csv, "pay_1") || !strings.Contains(csv, "pay_2") || !strings.Contains(h.Get("Content-Disposition"), "knetrecon-2026-11-28_2026-12-01.csv") {
		t.Fatalf("range: %d %v\n%s", code, h, csv)
	}
	if code, _, _ := p.get(t, "/reports/range?from=2026-12-01&to=2026-11-28&format=csv"); code != 400 {
		t.Fatalf("backwards range: %d", code)
	}
}

// A closed day the reconciler wrote a report for is downloaded as written (its latest revision);
// a day without one is built.
func TestReportDownloadServesTheWrittenReport(t *testing.T) {
	dir := t.TempDir()
	p := newPage(t, func(c *desk.Config, _ *store.Ledger) { c.ReportDir = dir })
	ctx := context.Background()
	d, err := report.Build(ctx, p.ledger, "2026-11-30", kuwait, time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.WriteFiles(dir, d); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(filepath.Join(dir, "2026-11-30.csv"))
	if err != nil {
		t.Fatal(err)
	}
	code, csv, h := p.get(t, "/reports/2026-11-30.csv")
	if code != 200 || csv != string(written) || h.Get("X-Knetrecon-Report") != "written" || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Fatalf("written report: %d %v", code, h)
	}
	if code, _, h := p.get(t, "/reports/2026-11-29.csv"); code != 200 || h.Get("X-Knetrecon-Report") != "" {
		t.Fatalf("built report: %d %v", code, h)
	}
	if code, _, _ := p.get(t, "/reports/..%2Fetc.csv"); code != 404 {
		t.Fatalf("a path for a date: %d", code)
	}
}
