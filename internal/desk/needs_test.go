package desk_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/desk"
	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// longID is an id as long as the ones that pushed buttons off the page.
var longID = "act_" + strings.Repeat("0123456789abcdefghij", 4)

// incident seeds what an on-call engineer meets on a bad night, on top of newPage's payments: a
// payment Pending past KNET's window (pay_3, 20 minutes), a stuck one (pay_4), an
// amount_mismatch with long details (pay_5), and a dead letter with headers and a JSON body.
// It returns the dead letter's id.
func incident(t testing.TB, l *store.Ledger) int64 {
	t.Helper()
	ctx := context.Background()
	now := l.Now()
	pending := func(id, evt, ref string, amount int64, at time.Time) {
		in := event(evt, payment.EventPending, id, "", amount, at)
		in.Reference = ref
		if _, err := l.Apply(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	pending("pay_3", "evt_30", "Ord-Mixed-77", 12_345, now.Add(-20*time.Minute))
	pending("pay_4", "evt_40", "ORD-STUCK-4", 8_000, now.Add(-45*time.Minute))
	pending("pay_5", "evt_49", "ORD-pay_5", 2_500, now.Add(-3*time.Hour-time.Minute))
	captured := event("evt_50", payment.EventCaptured, "pay_5", longID, 2_500, now.Add(-3*time.Hour))
	captured.KNET = &store.KNETIDs{PaymentID: "100612345678", TransactionID: "900612345678", BankReference: "Bref-61234"}
	if _, err := l.Apply(ctx, captured); err != nil {
		t.Fatal(err)
	}
	var dl int64
	if err := l.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.AddOrReopenDiscrepancy(ctx, "pay_4", payment.KindStuck, "", store.OriginAPI, map[string]any{
			"reason": "open for 45m0s, longer than 30m0s", "ledger_status": "Pending", "age": "45m0s"}); err != nil {
			return err
		}
		if _, err := tx.AddOrReopenDiscrepancy(ctx, "pay_5", payment.KindAmountMismatch, store.SubjectProvider, store.OriginAPI, map[string]any{
			"ledger_status": "Captured", "provider_status": "Captured", "ledger_captured": 2_500, "provider_captured": 2_000,
			"ledger_refunded": 0, "provider_refunded": 0, "ledger_currency": "KWD", "provider_currency": "KWD",
			"checked_at": now.Add(-time.Hour).UTC().Format(time.RFC3339Nano), "action_id": longID,
			"detail": "Checkout.com's balances differ from the ledger's after the capture of the order's second shipment, which the " +
				"merchant's hub reported as a partial capture while the acquirer settled the full amount: ask the hub's operator " +
				"which of the two is right before refunding anything, and note the hub's ticket here"}); err != nil {
			return err
		}
		var err error
		dl, err = tx.AddDeadLetter(ctx, store.DeadLetter{StreamSeq: 77, Subject: "cko.webhooks.payment_captured", MsgID: "evt_" + strings.Repeat("f", 60),
			Reason: "decode: amount is not an integer", Deliveries: 1, Headers: map[string]string{"Cko-Signature": strings.Repeat("ab", 32), "Content-Type": "application/json"},
			Body: []byte(`{"id":"evt_77","type":"payment_captured","data":{"id":"pay_77","amount":"12.5"}}`), CreatedAt: now.Add(-10 * time.Minute)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return dl
}

// withSweep gives the page the sweep's default settings and a health line that reports one stuck.
func withSweep(c *desk.Config, _ *store.Ledger) {
	sw := reconcile.DefaultSweepConfig()
	c.Sweep, c.SweepSchedule = &sw, "@every 1m"
	c.Health = func(context.Context) []desk.Check {
		return []desk.Check{{Name: "consumer", OK: true, Detail: "lag 0"}, {Name: "sweep", OK: true, Detail: "last at 11:59: 2 asked, 1 stuck"}}
	}
}

func TestHomeSaysWhatNeedsYou(t *testing.T) {
	p := newPage(t, withSweep)
	incident(t, p.ledger)
	code, home, _ := p.get(t, "/")
	if code != 200 {
		t.Fatalf("home %d:\n%s", code, home)
	}
	home = html.UnescapeString(home)
	section := func(id string) string {
		m := regexp.MustCompile(`(?s)<section id="` + id + `">(.*?)</section>`).FindStringSubmatch(home)
		if m == nil {
			t.Fatalf("no section %s:\n%s", id, home)
		}
		return m[1]
	}
	// Pending past KNET's window: age, amount, reference, and what the sweep does next, when.
	overdue := section("overdue")
	for _, want := range []string{`<span class="warn">2</span>`, "pay_3", "Ord-Mixed-77", "12.345 KWD", `<td data-l="age">20m</td>`,
		"asks Checkout.com at the next sweep (@every 1m), due since 2026-12-01 11:47:00 +03:00 and voids it there if still Pending; marked stuck at 2026-12-01 12:10:00 +03:00 if still open",
		"pay_4", "8.000 KWD", `<span class="bad">stuck</span>`} {
		if !strings.Contains(overdue, want) {
			t.Errorf("overdue lacks %q:\n%s", want, overdue)
		}
	}
	// Stuck: the reason in words, amount and reference.
	stuck := section("stuck")
	for _, want := range []string{`<span class="bad">1</span>`, "pay_4", "ORD-STUCK-4", "8.000 KWD", "open for 45m0s, longer than 30m0s"} {
		if !strings.Contains(stuck, want) {
			t.Errorf("stuck lacks %q:\n%s", want, stuck)
		}
	}
	// Open discrepancies by kind with the money at stake, details as labelled fields in KWD.
	disc := section("discrepancies")
	for _, want := range []string{`amount_mismatch</a></td><td class="num">1</td><td>2.500 KWD</td>`, `stuck</a></td><td class="num">1</td><td>8.000 KWD</td>`,
		"<dt>provider captured</dt><dd>2.000 KWD</dd>", "<dt>ledger captured</dt><dd>2.500 KWD</dd>", "<dt>checked at</dt><dd>2026-12-01 11:00:00 +03:00</dd>"} {
		if !strings.Contains(disc, want) {
			t.Errorf("discrepancies lack %q:\n%s", want, disc)
		}
	}
	if strings.Contains(home, `{"`) {
		t.Errorf("raw JSON on the home page:\n%s", home)
	}
	// Dead letters, and health coloured by what it says: a stuck count is never green.
	if dead := section("dead"); !strings.Contains(dead, `<span class="bad">1</span>`) || !strings.Contains(dead, "decode: amount is not an integer") {
		t.Errorf("dead letters:\n%s", dead)
	}
	health := section("health")
	for _, want := range []string{`<td>sweep</td><td class="warn">ok, 1 stuck</td>`, `<td>stuck payments</td><td class="bad">1</td>`,
		`<td>dead letters pending</td><td class="bad">1</td>`, `<td>consumer</td><td class="ok">ok</td>`} {
		if !strings.Contains(health, want) {
			t.Errorf("health lacks %q:\n%s", want, health)
		}
	}
	if !strings.Contains(home, "times: Asia/Kuwait (+03:00)") {
		t.Error("the page does not name its time zone")
	}
}

func TestHomeWithTheSweepOff(t *testing.T) {
	p := newPage(t)
	incident(t, p.ledger)
	if _, home, _ := p.get(t, "/"); !strings.Contains(home, "nothing: the sweep is off here") {
		t.Fatalf("home:\n%s", home)
	}
}

// csrfOf finds the page's form token.
func csrfOf(t *testing.T, html string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no form token:\n%s", html)
	}
	return m[1]
}

// form posts from the page's origin and returns the code, the body and the redirect.
func (p *page) form(t *testing.T, path string, form url.Values, hdr ...string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.srv.URL)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(resp), resp.Header.Get("Location")
}

func TestConfirmations(t *testing.T) {
	p := newPage(t, withSweep)
	dl := incident(t, p.ledger)
	ctx := context.Background()
	_, home, _ := p.get(t, "/")
	csrf := csrfOf(t, home)
	stuck, err := p.ledger.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: "pay_4", Kind: payment.KindStuck})
	if err != nil || len(stuck) != 1 {
		t.Fatalf("stuck %+v %v", stuck, err)
	}
	// A resolve of something still true says it will reopen; nothing happens until confirmed.
	path := fmt.Sprintf("/discrepancies/%d/resolve", stuck[0].ID)
	code, body, _ := p.form(t, path, url.Values{"csrf": {csrf}, "note": {"voided by hand in the hub"}, "back": {"/payments/pay_4"}})
	body = html.UnescapeString(body)
	if code != 200 || !strings.Contains(body, "still Pending, so the next sweep marks it stuck again (it reopens)") ||
		!strings.Contains(body, `name="confirm" value="yes"`) || !strings.Contains(body, `name="note" value="voided by hand in the hub"`) ||
		!strings.Contains(body, "8.000 KWD, reference ORD-STUCK-4") || !strings.Contains(body, `href="/payments/pay_4" id="confirm-cancel"`) {
		t.Fatalf("confirm page %d:\n%s", code, body)
	}
	if again, _ := p.ledger.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: "pay_4", Kind: payment.KindStuck}); len(again) != 1 {
		t.Fatal("resolved before the confirmation")
	}
	// Confirmed: resolved, back to a page of this desk only.
	for _, tt := range []struct{ give, want string }{
		{`/\evil.example/x`, "/"}, {"//evil.example", "/"}, {"https://evil.example/", "/"}, {"/payments/pay_4", "/payments/pay_4"},
	} {
		d, err := p.ledger.Discrepancies(ctx, store.DiscrepancyFilter{PaymentID: "pay_4", Kind: payment.KindStuck, All: true})
		if err != nil {
			t.Fatal(err)
		}
		if d[0].ResolvedAt != nil {
			if err := p.ledger.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.AddOrReopenDiscrepancy(ctx, "pay_4", payment.KindStuck, "", store.OriginAPI, map[string]any{"reason": "again"})
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		code, _, loc := p.form(t, path, url.Values{"csrf": {csrf}, "note": {"x"}, "back": {tt.give}, "confirm": {"yes"}})
		if code != http.StatusSeeOther || loc != tt.want {
			t.Errorf("back %q: %d to %q, want %q", tt.give, code, loc, tt.want)
		}
	}
	// A dead letter's discard and a bulk discard: confirmation pages first.
	code, body, _ = p.form(t, fmt.Sprintf("/dead-letters/%d/discard", dl), url.Values{"csrf": {csrf}, "note": {"test tool garbage"}})
	if code != 200 || !strings.Contains(body, fmt.Sprintf("Discard dead letter %d?", dl)) || !strings.Contains(body, "decode: amount is not an integer") {
		t.Fatalf("discard confirm %d:\n%s", code, body)
	}
	if d, _ := p.ledger.DeadLetter(ctx, dl); !d.Pending() {
		t.Fatal("discarded before the confirmation")
	}
	var second int64
	if err := p.ledger.Update(ctx, func(tx *store.Tx) error {
		var err error
		second, err = tx.AddDeadLetter(ctx, store.DeadLetter{StreamSeq: 78, Subject: "cko.webhooks.unknown", Reason: "not JSON", Body: []byte("x"), CreatedAt: p.ledger.Now()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	bulk := url.Values{"csrf": {csrf}, "action": {"discard"}, "note": {"load test leftovers"}, "id": {fmt.Sprint(dl), fmt.Sprint(second)}}
	code, body, _ = p.form(t, "/dead-letters/bulk", bulk)
	if code != 200 || !strings.Contains(body, "Discard 2 dead letters?") || strings.Count(body, `name="id"`) != 2 {
		t.Fatalf("bulk confirm %d:\n%s", code, body)
	}
	bulk.Set("confirm", "yes")
	if code, _, loc := p.form(t, "/dead-letters/bulk", bulk); code != http.StatusSeeOther || !strings.Contains(loc, "discarded") {
		t.Fatalf("bulk: %d %s", code, loc)
	}
	if n, _, _ := p.ledger.OpenCounts(ctx); n != 0 {
		t.Fatalf("%d dead letters still pending", n)
	}
	// The discrepancies picked on their list (all but the stuck mark), resolved with one note
	// once confirmed.
	open, err := p.ledger.Discrepancies(ctx, store.DiscrepancyFilter{})
	if err != nil || len(open) != 3 {
		t.Fatalf("open %+v %v", open, err)
	}
	pick := url.Values{"csrf": {csrf}, "note": {"checked with finance"}, "back": {"/discrepancies?kind="}}
	for _, x := range open {
		if x.Kind != payment.KindStuck {
			pick.Add("id", fmt.Sprint(x.ID))
		}
	}
	code, body, _ = p.form(t, "/discrepancies/resolve", pick)
	body = html.UnescapeString(body)
	if code != 200 || !strings.Contains(body, "Resolve 2 discrepancies?") || !strings.Contains(body, "it reopens") || strings.Count(body, `name="id"`) != 2 {
		t.Fatalf("bulk resolve confirm %d:\n%s", code, body)
	}
	pick.Set("confirm", "yes")
	code, _, loc := p.form(t, "/discrepancies/resolve", pick)
	if flash, _ := url.QueryUnescape(loc); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/discrepancies?") || strings.Count(flash, "resolved") != 2 {
		t.Fatalf("bulk resolve: %d %s", code, flash)
	}
	if open, _ := p.ledger.Discrepancies(ctx, store.DiscrepancyFilter{}); len(open) != 1 || open[0].Kind != payment.KindStuck {
		t.Fatalf("open after: %+v", open)
	}
}

func TestDeadLetterPage(t *testing.T) {
	p := newPage(t)
	dl := incident(t, p.ledger)
	code, body, _ := p.get(t, fmt.Sprintf("/dead-letters/%d", dl))
	body = html.UnescapeString(body)
	if code != 200 || !strings.Contains(body, "<dt>Cko-Signature</dt><dd>abab") || !strings.Contains(body, "<dt>Content-Type</dt><dd>application/json</dd>") ||
		!strings.Contains(body, "Body (JSON, pretty-printed)") || !strings.Contains(body, "\n  \"type\": \"payment_captured\",") ||
		!strings.Contains(body, "<dt>received</dt><dd>2026-12-01 12:00:00 +03:00</dd>") {
		t.Fatalf("dead letter page %d:\n%s", code, body)
	}
	if code, raw, h := p.get(t, fmt.Sprintf("/dead-letters/%d/body", dl)); code != 200 || !strings.HasPrefix(raw, `{"id":"evt_77"`) || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("raw body %d %q", code, raw)
	}
	if _, list, _ := p.get(t, "/dead-letters"); !strings.Contains(list, "<th>received</th><th>subject</th><th>reason</th>") ||
		!strings.Contains(list, fmt.Sprintf(`href="/dead-letters/%d#body">body</a>`, dl)) {
		t.Fatalf("list:\n%s", list)
	}
}

func TestSearch(t *testing.T) {
	p := newPage(t)
	incident(t, p.ledger)
	for _, tt := range []struct{ give, want string }{
		{"ord-mixed-77", "/payments/pay_3"}, // a mixed-case reference, typed in lower case
		{"ORD-STUCK", "/payments/pay_4"},    // a prefix
		{"evt_40", "/payments/pay_4"},       // an event id
		{"EVT_5", "/payments/pay_5"},        // an event id, upper case, a prefix
		{strings.ToUpper(longID[:30]), "/payments/pay_5"},
		{"PAY_1", "/payments/pay_1"},
		{"1006123", "/payments/pay_5"},      // KNET's payment id, a prefix
		{"900612345678", "/payments/pay_5"}, // KNET's transaction id
		{"BREF-6", "/payments/pay_5"},       // the bank reference, in the other case
	} {
		code, _, h := p.get(t, "/search?q="+url.QueryEscape(tt.give))
		if code != http.StatusSeeOther || h.Get("Location") != tt.want {
			t.Errorf("search %q: %d %s, want %s", tt.give, code, h.Get("Location"), tt.want)
		}
	}
	// Several matches: listed with status, amount and date.
	code, body, _ := p.get(t, "/search?q=ord-")
	body = html.UnescapeString(body)
	if code != 200 || strings.Count(body, `<tr><td><a href="/payments/`) != 5 || !strings.Contains(body, "12.345 KWD") ||
		!strings.Contains(body, `<td data-l="status">Pending</td>`) || !strings.Contains(body, "reference: Ord-Mixed-77") || !strings.Contains(body, "2026-12-01 11:40:00 +03:00") {
		t.Fatalf("search ord- %d:\n%s", code, body)
	}
	// The discrepancies list by kind and state.
	if code, body, _ := p.get(t, "/discrepancies?kind=amount_mismatch"); code != 200 || !strings.Contains(body, "pay_5") || strings.Contains(body, "pay_2") {
		t.Fatalf("discrepancies by kind %d:\n%s", code, body)
	}
	if code, body, _ := p.get(t, "/discrepancies?day=2026-12-01"); code != 200 || !strings.Contains(body, "pay_5") {
		t.Fatalf("discrepancies by day %d:\n%s", code, body)
	}
	if code, body, _ := p.get(t, "/discrepancies?day=2026-11-30&state=all"); code != 200 || !strings.Contains(body, "none: no discrepancies match") {
		t.Fatalf("discrepancies of a quiet day %d:\n%s", code, body)
	}
	if code, _, _ := p.get(t, "/discrepancies?state=bogus"); code != 400 {
		t.Fatalf("bogus state: %d", code)
	}
}

func TestCheckNowSaysWhatItLearned(t *testing.T) {
	p := newPage(t, withSweep, func(c *desk.Config, l *store.Ledger) {
		c.CheckNow = func(ctx context.Context, id, who, note string) (string, error) {
			return "reconciled (Checkout.com says Pending)", l.Update(ctx, func(tx *store.Tx) error {
				return tx.RecordSweepCheck(ctx, store.SweepCheck{Check: store.Check{PaymentID: id, CheckedAt: l.Now(), ProviderStatus: "Pending",
					Outcome: "reconciled", Details: `{"applied":null,"discrepancies":null}`}})
			})
		}
	})
	incident(t, p.ledger)
	_, page, _ := p.get(t, "/payments/pay_3")
	code, _, loc := p.form(t, "/payments/pay_3/check", url.Values{"csrf": {csrfOf(t, page)}})
	flash, _ := url.QueryUnescape(loc)
	if code != http.StatusSeeOther || !strings.Contains(flash, "still Pending at Checkout.com; next, the sweep asks Checkout.com at ") {
		t.Fatalf("check: %d %s", code, flash)
	}
}

func TestGuard(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	if err := os.WriteFile(file, []byte("# on-call\nalice:alice-0123456789abcdef\nbob: bob-0123456789abcdef \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := desk.ReadTokens(file)
	if err != nil || len(tokens) != 2 || tokens["bob"] != "bob-0123456789abcdef" {
		t.Fatalf("tokens %v %v", tokens, err)
	}
	for _, bad := range []string{"alice\n", "alice:short\n", "al ice:0123456789abcdef0\n", "a:0123456789abcdef0\na:0123456789abcdef1\n", "# none\n"} {
		_ = os.WriteFile(file, []byte(bad), 0o600)
		if _, err := desk.ReadTokens(file); err == nil || strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("tokens file %q: %v", bad, err)
		}
	}
	tokens["desk"] = "the-old-single-token-0123"
	p := newPage(t, func(c *desk.Config, _ *store.Ledger) {
		c.Tokens, c.OperatorHeader, c.Hosts = tokens, "X-Forwarded-User", []string{"desk.example:8443"}
	})
	incident(t, p.ledger)
	do := func(method, path, host string, form url.Values, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, p.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if host != "" {
			req.Host = host
			req.Header.Set("Origin", "http://"+host)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(resp)
	}
	// A DNS-rebinding page's Host is refused, token or not, before anything is read or done.
	if code, body := do("GET", "/", "rebind.evil.example:"+port(p), nil, "Authorization", "Bearer alice-0123456789abcdef"); code != http.StatusMisdirectedRequest || strings.Contains(body, "csrf") {
		t.Fatalf("rebinding host: %d %s", code, body)
	}
	if code, _ := do("GET", "/", "desk.example:8443", nil, "Authorization", "Bearer alice-0123456789abcdef"); code != 200 {
		t.Fatalf("listed host: %d", code)
	}
	if code, _ := do("GET", "/", "desk.example:9999", nil, "Authorization", "Bearer alice-0123456789abcdef"); code != http.StatusMisdirectedRequest {
		t.Fatalf("listed host, other port: %d", code)
	}
	// Credentials: none, a wrong one, a basic-auth user name alone.
	if code, _ := do("GET", "/", "", nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := do("GET", "/", "", nil, "Authorization", "Bearer alice-0123456789abcdeX"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	// The audit trail's operator is the token's name, never the basic-auth user name typed.
	req, _ := http.NewRequest("GET", p.srv.URL+"/", nil)
	req.SetBasicAuth("the-cfo", "bob-0123456789abcdef")
	resp, err := p.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("basic auth: %v %v", resp, err)
	}
	csrf := csrfOf(t, readAll(resp))
	resp.Body.Close()
	seq := uint64(100)
	who := func(hdr ...string) string {
		t.Helper()
		ctx := context.Background()
		var id int64
		seq++
		if err := p.ledger.Update(ctx, func(tx *store.Tx) error {
			var err error
			id, err = tx.AddDeadLetter(ctx, store.DeadLetter{StreamSeq: seq, Subject: "cko.webhooks.unknown", Reason: "not JSON", Body: []byte("x"), CreatedAt: p.ledger.Now()})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if code, body := do("POST", fmt.Sprintf("/dead-letters/%d/discard", id), "", url.Values{"csrf": {csrf}, "confirm": {"yes"}, "note": {"who am i"}}, hdr...); code != http.StatusSeeOther {
			t.Fatalf("discard as %v: %d %s", hdr, code, body)
		}
		acts, err := p.ledger.Actions(ctx, fmt.Sprintf("dead_letter:%d", id), 1)
		if err != nil || len(acts) == 0 {
			t.Fatalf("audit trail %v %v", acts, err)
		}
		return acts[0].Who
	}
	if w := who("Authorization", basic("the-cfo", "bob-0123456789abcdef")); w != "bob" {
		t.Errorf("basic auth as the-cfo with bob's token recorded %q", w)
	}
	if w := who("X-Forwarded-User", "carol@example.com"); w != "carol@example.com" {
		t.Errorf("the proxy's operator recorded %q", w)
	}
	if w := who("Authorization", "Bearer the-old-single-token-0123"); w != "desk" {
		t.Errorf("KNETRECON_DESK_TOKEN recorded %q", w)
	}
}

// TestGuardWithoutAProxyHeader: a header nobody configured is never trusted.
func TestGuardWithoutAProxyHeader(t *testing.T) {
	p := newPage(t, func(c *desk.Config, _ *store.Ledger) { c.Tokens = map[string]string{"alice": "alice-0123456789abcdef"} })
	req, _ := http.NewRequest("GET", p.srv.URL+"/", nil)
	req.Header.Set("X-Forwarded-User", "mallory")
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("an unconfigured proxy header let in: %d", resp.StatusCode)
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func port(p *page) string {
	u, _ := url.Parse(p.srv.URL)
	return u.Port()
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
