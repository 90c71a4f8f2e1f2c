package desk_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/desk"
	"knetrecon/internal/payment"
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

func newPage(t *testing.T) *page {
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
	d, err := desk.New(desk.Config{Ledger: l, Location: kuwait, Now: func() time.Time { return now },
		Health: func(context.Context) []desk.Check { return []desk.Check{{Name: "consumer", OK: true, Detail: "lag 0"}} }})
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
		strings.Count(home, "<rect ") != 30 || !strings.Contains(home, "captured_after_expiry 1") || !strings.Contains(home, "lag 0") {
		t.Fatalf("home %d:\n%s", code, home)
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
	if c := post(url.Values{"note": {"customer refunded by hand"}, "csrf": {csrf}, "back": {"/payments/pay_2"}}, p.srv.URL); c != http.StatusSeeOther {
		t.Fatalf("resolve: %d", c)
	}
	if _, pay, _ = p.get(t, "/payments/pay_2"); !strings.Contains(pay, "by hand (desk): customer refunded by hand") {
		t.Fatalf("not resolved:\n%s", pay)
	}
	if c := post(url.Values{"note": {"again"}, "csrf": {csrf}}, p.srv.URL); c != http.StatusConflict {
		t.Fatalf("resolve twice: %d", c)
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
