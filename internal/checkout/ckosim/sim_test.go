package ckosim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
)

const testKey = "sk_sbox_test_key"

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// receiver is a webhook endpoint that records what it receives and answers with status().
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	hdrs   []http.Header
	status func(n int) int // n: 1-based count of this request
	srv    *httptest.Server
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	rc := &receiver{status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		rc.hdrs = append(rc.hdrs, r.Header.Clone())
		n := len(rc.bodies)
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.status != nil {
			code = rc.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) events(t *testing.T) []*checkout.Event {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []*checkout.Event
	for _, b := range rc.bodies {
		ev, err := checkout.DecodeEvent(b)
		if err != nil {
			t.Fatalf("webhook does not decode: %v\n%s", err, b)
		}
		out = append(out, ev)
	}
	return out
}

func (rc *receiver) types(t *testing.T) []string {
	var out []string
	for _, ev := range rc.events(t) {
		out = append(out, ev.Type)
	}
	return out
}

type env struct {
	sim   *ckosim.Sim
	clock *ckosim.FakeClock
	srv   *httptest.Server
	rc    *receiver
}

// mustSim starts a simulator on a fake clock behind a real HTTP server, delivering to a receiver.
func mustSim(t *testing.T, cfg ckosim.Config) *env {
	t.Helper()
	e := &env{clock: ckosim.NewFakeClock(t0)}
	if cfg.WebhookURL == "" {
		e.rc = newReceiver(t, nil)
		cfg.WebhookURL = e.rc.srv.URL
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = testKey
	}
	if cfg.WebhookKey == "" {
		cfg.WebhookKey = "whsec_test"
	}
	cfg.Clock = e.clock
	e.sim = ckosim.New(cfg)
	e.srv = httptest.NewServer(e.sim.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		if err := e.sim.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func (e *env) idle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.sim.WaitIdle(ctx); err != nil {
		t.Fatalf("wait idle: %v", err)
	}
}

func (e *env) do(t *testing.T, method, path, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func knetRequest(amount int64) ckosim.PaymentRequest {
	return ckosim.PaymentRequest{Amount: amount, Currency: "KWD", Reference: "ORD 1",
		Source: checkout.Source{Type: "knet", Language: "en"}, Metadata: json.RawMessage(`{"order":"1"}`)}
}

func mustCreate(t *testing.T, sim *ckosim.Sim, amount int64) string {
	t.Helper()
	c, err := sim.CreatePayment(knetRequest(amount))
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func status(t *testing.T, sim *ckosim.Sim, id string) string {
	t.Helper()
	p, err := sim.Payment(id)
	if err != nil {
		t.Fatal(err)
	}
	return p.Status
}

func TestCreatePaymentValidation(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	src := func(extra string) string {
		return `{"amount":1000,"currency":"KWD","source":{"type":"knet","language":"en"` + extra + `}}`
	}
	tests := []struct {
		name  string
		give  string
		want  int
		codes []string
	}{
		{"sample request", string(sample(t, "api_request_payment_knet.json")), 202, nil},
		{"arabic", `{"amount":990,"currency":"KWD","source":{"type":"knet","language":"ar"}}`, 202, nil},
		{"nine digits", `{"amount":999999990,"currency":"KWD","source":{"type":"knet","language":"en"}}`, 202, nil},
		{"ten digits", `{"amount":1000000000,"currency":"KWD","source":{"type":"knet","language":"en"}}`, 422, []string{"amount_invalid"}},
		{"last digit not 0", `{"amount":1005,"currency":"KWD","source":{"type":"knet","language":"en"}}`, 422, []string{"amount_invalid"}},
		{"fraction", `{"amount":10.50,"currency":"KWD","source":{"type":"knet","language":"en"}}`, 422, []string{"amount_invalid"}},
		{"negative", `{"amount":-1000,"currency":"KWD","source":{"type":"knet","language":"en"}}`, 422, []string{"amount_invalid"}},
		{"no amount", `{"currency":"KWD","source":{"type":"knet","language":"en"}}`, 422, []string{"amount_required"}},
		{"USD", `{"amount":1000,"currency":"USD","source":{"type":"knet","language":"en"}}`, 422, []string{"currency_not_supported"}},
		{"language fr", `{"amount":1000,"currency":"KWD","source":{"type":"knet","language":"fr"}}`, 422, []string{"language_invalid"}},
		{"udf punctuation", src(`,"user_defined_field2":"a-b"`), 422, []string{"user_defined_field2_invalid"}},
		{"udf too long", src(`,"user_defined_field1":"` + strings.Repeat("a", 256) + `"`), 422, []string{"user_defined_field1_invalid"}},
		{"udf 255", src(`,"user_defined_field1":"` + strings.Repeat("a", 255) + `"`), 202, nil},
		{"card token 7 digits", src(`,"card_token":"0123456"`), 422, []string{"card_token_invalid"}},
		{"udf3 with card token", src(`,"card_token":"01234567","user_defined_field3":"x"`), 422, []string{"user_defined_field3_not_allowed_with_card_token"}},
		{"udf5 with ptlf", src(`,"ptlf":"abc","user_defined_field5":"x"`), 422, []string{"user_defined_field5_not_allowed_with_ptlf"}},
		{"not knet", `{"amount":1000,"currency":"KWD","source":{"type":"card"}}`, 422, []string{"payment_source_not_supported"}},
		{"not json", `{`, 422, []string{"request_body_malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := e.do(t, "POST", "/payments", tt.give, nil)
			if code != tt.want {
				t.Fatalf("status %d, want %d: %s", code, tt.want, body)
			}
			if hdr.Get("Cko-Request-Id") == "" {
				t.Error("no Cko-Request-Id")
			}
			if tt.want != 422 {
				return
			}
			var eb struct {
				RequestID  string   `json:"request_id"`
				ErrorType  string   `json:"error_type"`
				ErrorCodes []string `json:"error_codes"`
			}
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatal(err)
			}
			if eb.ErrorType != "request_invalid" || eb.RequestID == "" || !slices.Equal(eb.ErrorCodes, tt.codes) {
				t.Fatalf("error body %s, want codes %v", body, tt.codes)
			}
		})
	}
}

func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestCreateAnswersLikeSample(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	code, _, body := e.do(t, "POST", "/payments", string(sample(t, "api_request_payment_knet.json")), nil)
	if code != http.StatusAccepted {
		t.Fatalf("status %d: %s", code, body)
	}
	want := sample(t, "api_post_payment_knet_pending_202.json")
	for _, k := range keys(t, want) {
		if !slices.Contains(keys(t, body), k) {
			t.Errorf("202 lacks %q: %s", k, body)
		}
	}
	var p checkout.Payment
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != "Pending" || !regexp.MustCompile(`^pay_[a-z2-7]{26}$`).MatchString(p.ID) || p.Customer == nil || p.Customer.ID == "" {
		t.Fatalf("202 %s", body)
	}
	if p.Links["self"].Href != e.srv.URL+"/payments/"+p.ID || !strings.HasPrefix(p.Links["redirect"].Href, e.srv.URL+"/knet/tok_") {
		t.Fatalf("links %+v", p.Links)
	}
	e.idle(t)
	evs := e.rc.events(t)
	if len(evs) != 1 || evs[0].Type != "payment_pending" || evs[0].Data.ID != p.ID || evs[0].Data.ActionID != "" {
		t.Fatalf("webhooks %+v", evs)
	}
}

// TestKNETPaymentMatchesSample: a KNET payment captured by the simulator decodes into the same
// fields as Checkout.com's api_get_payment_knet_captured.json.
func TestKNETPaymentMatchesSample(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	_, _, body := e.do(t, "POST", "/payments", string(sample(t, "api_request_payment_knet.json")), nil)
	var created checkout.Payment
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.Complete(created.ID, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	code, _, got := e.do(t, "GET", "/payments/"+created.ID, "", nil)
	if code != 200 {
		t.Fatalf("GET %d", code)
	}
	want := sample(t, "api_get_payment_knet_captured.json")
	for _, k := range keys(t, want) {
		if !slices.Contains(keys(t, got), k) {
			t.Errorf("simulated payment lacks %q", k)
		}
	}
	var ws, gs struct {
		Source json.RawMessage `json:"source"`
	}
	_ = json.Unmarshal(want, &ws)
	_ = json.Unmarshal(got, &gs)
	if wk, gk := keys(t, ws.Source), keys(t, gs.Source); !slices.Equal(wk, gk) {
		t.Errorf("source keys\n got %v\nwant %v", gk, wk)
	}

	var w, g checkout.Payment
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	// Generated values differ; their presence and form must not.
	re := map[string]*regexp.Regexp{
		"knet_payment_id": regexp.MustCompile(`^\d{18}$`), "bank_reference": regexp.MustCompile(`^\d{12}$`),
		"knet_transaction_id": regexp.MustCompile(`^\d{15}$`), "auth_code": regexp.MustCompile(`^[A-Z0-9]{6}$`),
		"post_date": regexp.MustCompile(`^\d{4}$`),
	}
	for name, v := range map[string][2]string{
		"knet_payment_id": {w.Source.KNETPaymentID, g.Source.KNETPaymentID}, "bank_reference": {w.Source.BankReference, g.Source.BankReference},
		"knet_transaction_id": {w.Source.KNETTransactionID, g.Source.KNETTransactionID}, "auth_code": {w.Source.AuthCode, g.Source.AuthCode},
		"post_date": {w.Source.PostDate, g.Source.PostDate},
	} {
		if !re[name].MatchString(v[0]) || !re[name].MatchString(v[1]) {
			t.Errorf("%s: sample %q, simulator %q", name, v[0], v[1])
		}
	}
	g.ID, g.RequestedOn, g.Customer, g.Links, g.Balances = w.ID, w.RequestedOn, w.Customer, w.Links, nil
	g.Source.KNETPaymentID, g.Source.BankReference, g.Source.KNETTransactionID, g.Source.AuthCode, g.Source.PostDate =
		w.Source.KNETPaymentID, w.Source.BankReference, w.Source.KNETTransactionID, w.Source.AuthCode, w.Source.PostDate
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	if !bytes.Equal(gj, wj) {
		t.Errorf("decoded payment differs\n got %s\nwant %s", gj, wj)
	}
}

func TestKNETOutcomes(t *testing.T) {
	other := ckosim.TestCard
	other.Number = "4111111111111111"
	wrongPIN := ckosim.TestCard
	wrongPIN.PIN = "4321"
	wrongExpiry := ckosim.TestCard
	wrongExpiry.ExpiryYear = "2026"
	tests := []struct {
		name    string
		give    func(sim *ckosim.Sim, id string) (string, error)
		want    string
		events  []string
		actions []string
	}{
		{"test card", func(s *ckosim.Sim, id string) (string, error) { return s.Complete(id, ckosim.TestCard) },
			"Captured", []string{"payment_pending", "payment_approved", "payment_captured"}, []string{"Capture", "Authorization"}},
		{"wrong PIN", func(s *ckosim.Sim, id string) (string, error) { return s.Complete(id, wrongPIN) },
			"Declined", []string{"payment_pending", "payment_declined"}, []string{"Authorization"}},
		{"other card", func(s *ckosim.Sim, id string) (string, error) { return s.Complete(id, other) },
			"Declined", []string{"payment_pending", "payment_declined"}, []string{"Authorization"}},
		{"wrong expiry", func(s *ckosim.Sim, id string) (string, error) { return s.Complete(id, wrongExpiry) },
			"Declined", []string{"payment_pending", "payment_declined"}, []string{"Authorization"}},
		{"cancel", func(s *ckosim.Sim, id string) (string, error) { return s.Cancel(id) },
			"Canceled", []string{"payment_pending", "payment_canceled"}, []string{"Authorization"}},
		{"expire", func(s *ckosim.Sim, id string) (string, error) { return s.Expire(id) },
			"Expired", []string{"payment_pending", "payment_expired"}, []string{"Void"}},
		{"void", func(s *ckosim.Sim, id string) (string, error) { _, err := s.Void(id, "r"); return "Voided", err },
			"Voided", []string{"payment_pending", "payment_voided"}, []string{"Void"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustSim(t, ckosim.Config{})
			id := mustCreate(t, e.sim, 12340)
			got, err := tt.give(e.sim, id)
			if err != nil || got != tt.want || status(t, e.sim, id) != tt.want {
				t.Fatalf("status %q, %v; want %q", got, err, tt.want)
			}
			if _, err := e.sim.Complete(id, ckosim.TestCard); err != ckosim.ErrNotPending {
				t.Fatalf("second completion: %v", err)
			}
			e.idle(t)
			if types := e.rc.types(t); !slices.Equal(types, tt.events) {
				t.Fatalf("webhooks %v, want %v", types, tt.events)
			}
			code, _, body := e.do(t, "GET", "/payments/"+id+"/actions", "", nil)
			var acts []checkout.Action
			if err := json.Unmarshal(body, &acts); code != 200 || err != nil {
				t.Fatalf("actions %d %v", code, err)
			}
			var types []string
			for i, a := range acts {
				types = append(types, a.Type)
				if i > 0 && !a.ProcessedOn.Before(acts[i-1].ProcessedOn) {
					t.Errorf("actions not strictly newest first by processed_on: %v", acts)
				}
			}
			if !slices.Equal(types, tt.actions) {
				t.Fatalf("actions %v, want %v", types, tt.actions)
			}
			// Every event but payment_pending names one of the payment's actions.
			for _, ev := range e.rc.events(t)[1:] {
				if !slices.ContainsFunc(acts, func(a checkout.Action) bool { return a.ID == ev.Data.ActionID }) {
					t.Errorf("%s action_id %q not among the actions", ev.Type, ev.Data.ActionID)
				}
			}
		})
	}
}

func TestPendingStaysPending(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	id := mustCreate(t, e.sim, 1000)
	if err := e.sim.Land(id); err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(48 * time.Hour)
	e.idle(t)
	if got := status(t, e.sim, id); got != "Pending" {
		t.Fatalf("status %q", got)
	}
	if types := e.rc.types(t); !slices.Equal(types, []string{"payment_pending"}) {
		t.Fatalf("webhooks %v", types)
	}
}

func TestExpiryBoundary(t *testing.T) {
	tests := []struct {
		give time.Duration
		want string
	}{
		{6*time.Minute + 59*time.Second, "Captured"},
		{7 * time.Minute, "Captured"},
		{7*time.Minute + time.Second, "Expired"},
	}
	for _, tt := range tests {
		t.Run(tt.give.String(), func(t *testing.T) {
			e := mustSim(t, ckosim.Config{})
			id := mustCreate(t, e.sim, 1000)
			e.sim.Advance(time.Hour) // time before landing does not count
			if err := e.sim.Land(id); err != nil {
				t.Fatal(err)
			}
			e.sim.Advance(tt.give)
			if got, err := e.sim.Complete(id, ckosim.TestCard); err != nil || got != tt.want {
				t.Fatalf("got %q %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestKNETPage(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	create := func() (string, string) {
		_, _, body := e.do(t, "POST", "/payments", `{"amount":2500,"currency":"KWD","reference":"ORD 7","source":{"type":"knet","language":"en"},
			"success_url":"https://shop.example/ok","failure_url":"https://shop.example/fail"}`, nil)
		var p checkout.Payment
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		return p.ID, p.Links["redirect"].Href
	}
	tests := []struct {
		name     string
		form     url.Values
		after    time.Duration
		want     string
		location string
	}{
		{"submit test card", url.Values{"action": {"submit"}, "bank": {"Knet Test Card [KNET1]"}, "card_number": {"8888880000000001"}, "expiry_month": {"09"}, "expiry_year": {"2025"}, "pin": {"1234"}}, 6*time.Minute + 59*time.Second, "Captured", "https://shop.example/ok"},
		{"wrong pin", url.Values{"action": {"submit"}, "card_number": {"8888880000000001"}, "expiry_month": {"09"}, "expiry_year": {"2025"}, "pin": {"9999"}}, 0, "Declined", "https://shop.example/fail"},
		{"cancel", url.Values{"action": {"cancel"}}, time.Minute, "Canceled", "https://shop.example/fail"},
		{"too late", url.Values{"action": {"submit"}, "card_number": {"8888880000000001"}, "expiry_month": {"09"}, "expiry_year": {"2025"}, "pin": {"1234"}}, 7*time.Minute + time.Second, "Expired", "https://shop.example/fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, page := create()
			resp, err := http.Get(page)
			if err != nil {
				t.Fatal(err)
			}
			html, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{`name="bank"`, `name="card_number"`, `name="expiry_month"`, `name="expiry_year"`, `name="pin"`, `value="submit"`, `value="cancel"`, "2.500 KWD"} {
				if !bytes.Contains(html, []byte(want)) {
					t.Errorf("page lacks %s", want)
				}
			}
			e.sim.Advance(tt.after)
			resp, err = noRedirect.PostForm(page, tt.form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tt.location+"?cko-payment-id="+id {
				t.Fatalf("answer %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := status(t, e.sim, id); got != tt.want {
				t.Fatalf("status %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVoid(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	id := mustCreate(t, e.sim, 1000)
	key := map[string]string{"Cko-Idempotency-Key": "void-1"}
	code, _, first := e.do(t, "POST", "/payments/"+id+"/voids", `{"reference":"sweep"}`, key)
	if code != http.StatusAccepted {
		t.Fatalf("void %d %s", code, first)
	}
	var acc checkout.Accepted
	if err := json.Unmarshal(first, &acc); err != nil || !strings.HasPrefix(acc.ActionID, "act_") || acc.Reference != "sweep" {
		t.Fatalf("202 body %s", first)
	}
	code, _, again := e.do(t, "POST", "/payments/"+id+"/voids", `{"reference":"sweep"}`, key)
	if code != http.StatusAccepted || !bytes.Equal(again, first) {
		t.Fatalf("same key: %d %s, want the first answer %s", code, again, first)
	}
	code, _, _ = e.do(t, "POST", "/payments/"+id+"/voids", ``, map[string]string{"Cko-Idempotency-Key": "void-2"})
	if code != http.StatusForbidden {
		t.Fatalf("void of a Voided payment: %d, want 403", code)
	}
	e.idle(t)
	if types := e.rc.types(t); !slices.Equal(types, []string{"payment_pending", "payment_voided"}) {
		t.Fatalf("webhooks %v", types)
	}

	captured := mustCreate(t, e.sim, 1000)
	e.sim.Complete(captured, ckosim.TestCard)
	if code, _, _ := e.do(t, "POST", "/payments/"+captured+"/voids", ``, nil); code != http.StatusForbidden {
		t.Fatalf("void of Captured: %d, want 403", code)
	}

	e.sim.SetFaults(ckosim.Faults{VoidForbidden: true})
	pending := mustCreate(t, e.sim, 1000)
	if code, _, _ := e.do(t, "POST", "/payments/"+pending+"/voids", ``, nil); code != http.StatusForbidden {
		t.Fatalf("void under VoidForbidden: %d, want 403", code)
	}
	if got := status(t, e.sim, pending); got != "Pending" {
		t.Fatalf("status %q", got)
	}
}

func TestRefunds(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	id := mustCreate(t, e.sim, 1000)
	if code, _, _ := e.do(t, "POST", "/payments/"+id+"/refunds", `{"amount":100}`, nil); code != http.StatusForbidden {
		t.Fatalf("refund of Pending: %d, want 403", code)
	}
	e.sim.Complete(id, ckosim.TestCard)
	tests := []struct {
		give       string
		key        string
		want       int
		wantStatus string
		refunded   int64
	}{
		{`{"amount":300,"reference":"r1"}`, "k1", 202, "Partially Refunded", 300},
		{`{"amount":300,"reference":"r1"}`, "k1", 202, "Partially Refunded", 300}, // same key: same refund
		{`{"amount":300,"reference":"r2"}`, "k2", 202, "Partially Refunded", 600},
		{`{"amount":500}`, "k3", 422, "Partially Refunded", 600},
		{`{"amount":15}`, "k4", 422, "Partially Refunded", 600},
		{`{}`, "k5", 202, "Refunded", 1000},
		{`{"amount":10}`, "k6", 403, "Refunded", 1000},
	}
	for i, tt := range tests {
		code, _, body := e.do(t, "POST", "/payments/"+id+"/refunds", tt.give, map[string]string{"Cko-Idempotency-Key": tt.key})
		if code != tt.want {
			t.Fatalf("%d: %s → %d %s, want %d", i, tt.give, code, body, tt.want)
		}
		p, err := e.sim.Payment(id)
		if err != nil {
			t.Fatal(err)
		}
		b := p.Balances
		if p.Status != tt.wantStatus || b.TotalRefunded != tt.refunded || b.AvailableToRefund != 1000-tt.refunded ||
			b.TotalCaptured != 1000 || b.TotalAuthorized != 1000 {
			t.Fatalf("%d: status %q balances %+v", i, p.Status, b)
		}
	}
	e.idle(t)
	var refunded []int64
	for _, ev := range e.rc.events(t) {
		if ev.Type == "payment_refunded" {
			n, _ := strconv.ParseInt(ev.Data.Amount.String(), 10, 64)
			refunded = append(refunded, n)
			if ev.Data.Balances == nil {
				t.Error("payment_refunded without balances")
			}
		}
	}
	if !slices.Equal(refunded, []int64{300, 300, 400}) {
		t.Fatalf("refund webhooks %v", refunded)
	}
}

func TestAPIAuthAndNotFound(t *testing.T) {
	tests := []struct {
		mode ckosim.AuthMode
		give string
		want int
	}{
		{ckosim.AuthBearer, "Bearer " + testKey, 404},
		{ckosim.AuthBearer, testKey, 401},
		{ckosim.AuthBearer, "Bearer sk_wrong", 401},
		{ckosim.AuthBearer, "", 401},
		{ckosim.AuthBare, testKey, 404},
		{ckosim.AuthBare, "Bearer " + testKey, 401},
		{ckosim.AuthEither, testKey, 404},
		{ckosim.AuthEither, "Bearer " + testKey, 404},
		{ckosim.AuthEither, "sk_wrong", 401},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode)+" "+tt.give, func(t *testing.T) {
			e := mustSim(t, ckosim.Config{Auth: tt.mode})
			if code, _, _ := e.do(t, "GET", "/payments/pay_unknown", "", map[string]string{"Authorization": tt.give}); code != tt.want {
				t.Fatalf("status %d, want %d", code, tt.want)
			}
		})
	}
}

func TestWebhooksSignedAndShaped(t *testing.T) {
	e := mustSim(t, ckosim.Config{WebhookKey: "whsec_1", WebhookAuthorization: "hook-auth"})
	id := mustCreate(t, e.sim, 5000)
	e.sim.Complete(id, ckosim.TestCard)
	e.sim.Refund(id, 1000, "")
	e.idle(t)
	ring, err := checkout.NewKeyRing(checkout.Key{Name: "current", Secret: []byte("whsec_1")})
	if err != nil {
		t.Fatal(err)
	}
	e.rc.mu.Lock()
	bodies, hdrs := e.rc.bodies, e.rc.hdrs
	e.rc.mu.Unlock()
	evtID := regexp.MustCompile(`^evt_[a-z2-7]{26}$`)
	for i, body := range bodies {
		if _, err := ring.Verify(body, hdrs[i].Get(checkout.SignatureHeader)); err != nil {
			t.Errorf("webhook %d: %v", i, err)
		}
		if !checkout.AuthorizationMatches(hdrs[i].Get("Authorization"), "hook-auth") {
			t.Errorf("webhook %d Authorization %q", i, hdrs[i].Get("Authorization"))
		}
		ev, err := checkout.DecodeEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		if !evtID.MatchString(ev.ID) || ev.Version == "" || ev.Created.IsZero() || ev.Data.ID != id ||
			ev.Data.Currency != "KWD" || ev.Data.Reference != "ORD 1" || string(ev.Data.Metadata) != `{"order":"1"}` {
			t.Errorf("webhook %d: %s", i, body)
		}
		if _, err := checkout.ParseTime(ev.Data.ProcessedOn); err != nil {
			t.Errorf("processed_on: %v", err)
		}
		if ev.Type != "payment_pending" && (ev.Data.ActionID == "" || ev.Data.ResponseCode == "" || ev.Data.Balances == nil) {
			t.Errorf("%s lacks action_id, response_code or balances: %s", ev.Type, body)
		}
	}
	if len(bodies) != 4 {
		t.Fatalf("%d webhooks, want 4", len(bodies))
	}
}

func TestRetrySchedule(t *testing.T) {
	tests := []struct {
		name  string
		scale float64
	}{{"real schedule", 1}, {"scaled", 0.001}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
			e := mustSim(t, ckosim.Config{WebhookURL: rc.srv.URL, TimeScale: tt.scale})
			mustCreate(t, e.sim, 1000)
			e.idle(t)
			want := []time.Time{t0}
			at := t0
			for _, step := range ckosim.DefaultRetrySchedule {
				step = time.Duration(float64(step) * tt.scale)
				e.sim.Advance(step - step/100)
				e.idle(t)
				if n := len(e.sim.Webhooks()[0].Attempts); n != len(want) {
					t.Fatalf("re-sent early: %d attempts before %s", n, step)
				}
				e.sim.Advance(step / 100)
				e.idle(t)
				at = at.Add(step)
				want = append(want, at)
			}
			rec := e.sim.Webhooks()[0]
			var got []time.Time
			for _, a := range rec.Attempts {
				got = append(got, a.At)
				if a.Status != http.StatusServiceUnavailable {
					t.Errorf("attempt status %d", a.Status)
				}
			}
			if !slices.EqualFunc(got, want, time.Time.Equal) || !rec.GaveUp || rec.Delivered {
				t.Fatalf("attempts at %v\nwant %v (gave up %v)", got, want, rec.GaveUp)
			}
			e.sim.Advance(100 * time.Hour)
			e.idle(t)
			if n := len(e.sim.Webhooks()[0].Attempts); n != 9 {
				t.Fatalf("%d attempts after giving up, want 9", n)
			}
		})
	}
}

func TestRetryThenDelivered(t *testing.T) {
	rc := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	e := mustSim(t, ckosim.Config{WebhookURL: rc.srv.URL})
	mustCreate(t, e.sim, 1000)
	e.idle(t)
	e.sim.Advance(5 * time.Minute)
	e.idle(t)
	e.sim.Advance(10 * time.Minute)
	e.idle(t)
	rec := e.sim.Webhooks()[0]
	if !rec.Delivered || len(rec.Attempts) != 3 {
		t.Fatalf("record %+v", rec)
	}
}

func TestDeliveryTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	e := mustSim(t, ckosim.Config{WebhookURL: slow.URL, DeliveryTimeout: 20 * time.Millisecond})
	mustCreate(t, e.sim, 1000)
	e.idle(t)
	rec := e.sim.Webhooks()[0]
	if len(rec.Attempts) != 1 || rec.Attempts[0].Err == "" || rec.Delivered {
		t.Fatalf("record %+v", rec)
	}
}

// run drives the same payments through a fresh simulator and returns what became of its webhooks.
func faultRun(t *testing.T, seed uint64) ([]ckosim.WebhookRecord, []int, int) {
	e := mustSim(t, ckosim.Config{Seed: seed, Faults: ckosim.Faults{DropRate: 0.3, DuplicateRate: 0.2, DelayRate: 0.2, API5xxRate: 0.3}})
	for i := range 10 {
		id := mustCreate(t, e.sim, int64(1000*(i+1)))
		if i%3 == 0 {
			e.sim.Cancel(id)
		} else {
			e.sim.Complete(id, ckosim.TestCard)
		}
	}
	var codes []int
	for range 10 {
		code, _, _ := e.do(t, "GET", "/payments/pay_x", "", nil)
		codes = append(codes, code)
	}
	e.sim.Advance(time.Minute) // let the delayed ones out
	e.idle(t)
	e.rc.mu.Lock()
	n := len(e.rc.bodies)
	e.rc.mu.Unlock()
	return e.sim.Webhooks(), codes, n
}

func TestFaultsReproducibleBySeed(t *testing.T) {
	recA, codesA, nA := faultRun(t, 42)
	recB, codesB, nB := faultRun(t, 42)
	recC, _, _ := faultRun(t, 43)
	summary := func(recs []ckosim.WebhookRecord) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.EventID+" "+r.Type+map[bool]string{true: " dropped"}[r.Dropped]+
				map[bool]string{true: " dup"}[r.Duplicated]+map[bool]string{true: " delayed"}[r.Delayed])
		}
		return out
	}
	if !slices.Equal(summary(recA), summary(recB)) || !slices.Equal(codesA, codesB) || nA != nB {
		t.Fatalf("same seed, different runs:\n%v\n%v\n%v %v", summary(recA), summary(recB), codesA, codesB)
	}
	if slices.Equal(summary(recA), summary(recC)) {
		t.Fatal("different seeds, same run")
	}
	var dropped, dups, delivered int
	for _, r := range recA {
		switch {
		case r.Dropped:
			dropped++
			if len(r.Attempts) != 0 {
				t.Errorf("dropped webhook was sent: %+v", r)
			}
		case r.Duplicated:
			dups++
			if len(r.Attempts) != 2 {
				t.Errorf("duplicate sent %d times", len(r.Attempts))
			}
		}
		if r.Delivered {
			delivered++
		}
	}
	if dropped == 0 || dups == 0 || nA != delivered+dups {
		t.Fatalf("dropped %d dups %d delivered %d received %d", dropped, dups, delivered, nA)
	}
	if !slices.Contains(codesA, 404) || !slices.ContainsFunc(codesA, func(c int) bool { return c >= 500 }) {
		t.Fatalf("API codes %v", codesA)
	}
}

func TestAPI429(t *testing.T) {
	e := mustSim(t, ckosim.Config{Faults: ckosim.Faults{API429Rate: 1, RetryAfter: ckosim.Duration(3 * time.Second)}})
	code, hdr, _ := e.do(t, "GET", "/payments/pay_x", "", nil)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "3" {
		t.Fatalf("%d Retry-After %q", code, hdr.Get("Retry-After"))
	}
}

func TestDelayReorders(t *testing.T) {
	e := mustSim(t, ckosim.Config{Faults: ckosim.Faults{DelayRate: 1, MaxDelay: ckosim.Duration(time.Minute)}})
	for range 5 {
		mustCreate(t, e.sim, 1000)
	}
	e.idle(t)
	if got := len(e.rc.types(t)); got != 0 {
		t.Fatalf("%d delivered before their delay", got)
	}
	e.sim.Advance(time.Minute + time.Second)
	e.idle(t)
	var got []string
	for _, ev := range e.rc.events(t) {
		got = append(got, ev.Data.ID)
	}
	want := e.sim.PaymentIDs()
	if len(got) != 5 || slices.Equal(got, want) {
		t.Fatalf("delivery order %v is creation order %v", got, want)
	}
}

func TestControlAPI(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	post := func(path, body string) (int, []byte) {
		t.Helper()
		resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, body := post("/_sim/payments", `{"amount":3000,"currency":"KWD","source":{"type":"knet","language":"en"}}`)
	var p checkout.Payment
	if err := json.Unmarshal(body, &p); code != 202 || err != nil {
		t.Fatalf("create %d %s", code, body)
	}
	steps := []struct {
		path, body string
		want       int
		status     string
	}{
		{"/_sim/webhooks/drop-next", `{"n":1}`, 200, ""},
		{"/_sim/payments/" + p.ID + "/land", ``, 200, "Pending"},
		{"/_sim/advance", `{"by":"6m59s"}`, 200, ""},
		{"/_sim/payments/" + p.ID + "/complete", ``, 200, "Captured"},
		{"/_sim/payments/" + p.ID + "/refund", `{"amount":1000}`, 200, "Partially Refunded"},
		{"/_sim/payments/" + p.ID + "/refund", `{"amount":5000}`, 422, ""},
		{"/_sim/payments/" + p.ID + "/cancel", ``, 409, ""},
		{"/_sim/payments/pay_nope/expire", ``, 404, ""},
	}
	for _, st := range steps {
		code, body := post(st.path, st.body)
		if code != st.want {
			t.Fatalf("%s: %d %s, want %d", st.path, code, body, st.want)
		}
		if st.status != "" {
			var got checkout.Payment
			if err := json.Unmarshal(body, &got); err != nil || got.Status != st.status {
				t.Fatalf("%s: status %q, want %q", st.path, got.Status, st.status)
			}
		}
	}
	if code, body := post("/_sim/wait-idle?timeout=5s", ``); code != 200 {
		t.Fatalf("wait-idle %d %s", code, body)
	}
	resp, err := http.Get(e.srv.URL + "/_sim/webhooks?payment_id=" + p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var recs []ckosim.WebhookRecord
	json.NewDecoder(resp.Body).Decode(&recs)
	resp.Body.Close()
	if len(recs) != 4 || recs[0].Dropped || !recs[1].Dropped || recs[1].Type != "payment_approved" || !recs[3].Delivered {
		t.Fatalf("records %+v", recs)
	}
	req, _ := http.NewRequest("PUT", e.srv.URL+"/_sim/faults", strings.NewReader(`{"void_forbidden":true,"api_429_rate":0.5,"retry_after":"2s"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if f := e.sim.Faults(); !f.VoidForbidden || f.API429Rate != 0.5 || f.RetryAfter != ckosim.Duration(2*time.Second) {
		t.Fatalf("faults %+v", f)
	}
}

func TestConcurrentIdempotentRefund(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	id := mustCreate(t, e.sim, 1000)
	e.sim.Complete(id, ckosim.TestCard)
	var wg sync.WaitGroup
	codes := make([]int, 20)
	bodies := make([][]byte, 20)
	for i := range codes {
		wg.Go(func() {
			codes[i], _, bodies[i] = e.do(t, "POST", "/payments/"+id+"/refunds", `{"amount":100}`, map[string]string{"Cko-Idempotency-Key": "same"})
		})
	}
	wg.Wait()
	var first []byte
	for i, code := range codes {
		switch code {
		case http.StatusAccepted:
			if first == nil {
				first = bodies[i]
			} else if !bytes.Equal(first, bodies[i]) {
				t.Errorf("two answers for one key: %s and %s", first, bodies[i])
			}
		case http.StatusTooManyRequests:
		default:
			t.Errorf("answer %d %s", code, bodies[i])
		}
	}
	if p, _ := e.sim.Payment(id); p.Balances.TotalRefunded != 100 {
		t.Fatalf("refunded %d, want 100 once", p.Balances.TotalRefunded)
	}
}

func TestRefetchLostWebhook(t *testing.T) {
	e := mustSim(t, ckosim.Config{})
	e.sim.DropNext(2)
	id := mustCreate(t, e.sim, 1000)
	e.sim.Complete(id, ckosim.TestCard)
	e.idle(t)
	if types := e.rc.types(t); !slices.Equal(types, []string{"payment_captured"}) {
		t.Fatalf("delivered %v", types)
	}
	code, _, body := e.do(t, "GET", "/workflows/events/subject/"+id, "", nil)
	var list struct {
		Data []struct {
			ID, Type string
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.Data) != 3 || list.Data[1].Type != "payment_approved" {
		t.Fatalf("%d %s", code, body)
	}
	code, _, body = e.do(t, "GET", "/workflows/events/"+list.Data[1].ID, "", nil)
	ev, err := checkout.DecodeEvent(body)
	if code != 200 || err != nil || ev.Type != "payment_approved" || ev.Data.ID != id {
		t.Fatalf("%d %v %s", code, err, body)
	}
	if code, _, _ := e.do(t, "GET", "/workflows/events/evt_unknown", "", nil); code != 404 {
		t.Fatalf("unknown event: %d", code)
	}
}
