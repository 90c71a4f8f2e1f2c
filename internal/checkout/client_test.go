package checkout_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"knetrecon/internal/checkout"
	"knetrecon/internal/checkout/ckosim"
)

const simKey = "sk_sbox_client_test"

// fakeTime is the client's injected clock: Sleep moves it instead of waiting, and records the waits.
type fakeTime struct {
	clock  *ckosim.FakeClock
	mu     sync.Mutex
	sleeps []time.Duration
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.mu.Unlock()
	f.clock.Advance(d)
	return ctx.Err()
}

func (f *fakeTime) waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

type clientEnv struct {
	sim  *ckosim.Sim
	srv  *httptest.Server
	time *fakeTime
	hits atomic.Int64
}

// mustClientEnv runs a simulator on a fake clock behind a real server; wrap, when set, stands in
// front of the simulator's handler to inject answers.
func mustClientEnv(t testing.TB, cfg ckosim.Config, wrap func(n int64, w http.ResponseWriter, r *http.Request) bool) *clientEnv {
	t.Helper()
	e := &clientEnv{time: &fakeTime{clock: ckosim.NewFakeClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))}}
	cfg.Clock = e.time.clock
	if cfg.SecretKey == "" {
		cfg.SecretKey = simKey
	}
	e.sim = ckosim.New(cfg)
	h := e.sim.Handler()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := e.hits.Add(1)
		if wrap != nil && wrap(n, w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		e.srv.Close()
		e.sim.Close()
	})
	return e
}

func (e *clientEnv) client(t testing.TB, cfg checkout.ClientConfig) *checkout.Client {
	t.Helper()
	cfg.BaseURL = e.srv.URL
	if cfg.SecretKey == "" {
		cfg.SecretKey = simKey
	}
	if cfg.Now == nil {
		cfg.Now = e.time.clock.Now
		cfg.Sleep = e.time.Sleep
	}
	if cfg.Jitter == nil {
		cfg.Jitter = func() float64 { return 0.5 }
	}
	c, err := checkout.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *clientEnv) create(t testing.TB, amount int64) string {
	t.Helper()
	c, err := e.sim.CreatePayment(ckosim.PaymentRequest{Amount: amount, Currency: "KWD", Reference: "ORD 9",
		Source: checkout.Source{Type: "knet", Language: "en"}})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestClientDecodesSamples(t *testing.T) {
	files := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := files[r.URL.Path]
		body, err := os.ReadFile(filepath.Join("testdata", "samples", name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cko-Request-Id", "cko-req-1")
		if strings.HasPrefix(name, "api_error_422") {
			w.WriteHeader(http.StatusUnprocessableEntity)
		} else if strings.HasPrefix(name, "api_post_") {
			w.WriteHeader(http.StatusAccepted)
		}
		w.Write(body)
	}))
	defer srv.Close()
	files["/payments/pay_knet"] = "api_get_payment_knet_captured.json"
	files["/payments/pay_card"] = "api_get_payment_authorized_card.json"
	files["/payments/pay_pending"] = "api_post_payment_knet_pending_202.json"
	files["/payments/pay_a/actions"] = "api_get_payment_actions.json"
	files["/payments/pay_b/actions"] = "api_get_payment_actions_node_sdk_fixture.json"
	files["/payments/pay_bad"] = "api_error_422_request_invalid.json"
	c, err := checkout.NewClient(checkout.ClientConfig{BaseURL: srv.URL, SecretKey: "sk_x", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	knet, err := c.GetPayment(ctx, "pay_knet")
	if err != nil {
		t.Fatal(err)
	}
	s := knet.Source
	if knet.ID != "pay_4gubyq2w335upc54dx7a4257lq" || knet.Amount != 1000 || knet.Currency != "KWD" || knet.Status != checkout.StatusCaptured ||
		!knet.Approved || knet.PaymentType != "Regular" || !knet.RequestedOn.Equal(time.Date(2024, 5, 23, 17, 4, 5, 0, time.UTC)) ||
		s.Type != "knet" || s.Language != "en" || s.UserDefinedField4 != "fourth user defined field" || s.CardToken != "01234567" ||
		s.PTLF != "96033587c7b5" || s.KNETPaymentID != "100201914315601265" || s.KNETResult != "Captured" || s.BankReference != "914310000349" ||
		s.KNETTransactionID != "201914384388126" || s.AuthCode != "B00775" || s.PostDate != "0524" || s.AVR != "N" ||
		knet.Customer.ID != "cus_kx75h5tcegyednxeyvtn6vy3sq" || knet.Links["actions"].Href == "" || knet.Balances != nil {
		t.Errorf("KNET payment %+v", knet)
	}
	card, err := c.GetPayment(ctx, "pay_card")
	if err != nil {
		t.Fatal(err)
	}
	if card.Status != checkout.StatusAuthorized || card.Amount != 6540 || card.Currency != "USD" || card.Source.Last4 != "4242" ||
		card.Reference != "ORD-5023-4E89" || card.ActionID != "act_mbabizu24mvu3mela5njyhpit4" || card.Customer.Email != "brucewayne@gmail.com" {
		t.Errorf("card payment %+v", card)
	}
	pending, err := c.GetPayment(ctx, "pay_pending")
	if err != nil {
		t.Fatal(err)
	}
	if pending.Status != checkout.StatusPending || !strings.Contains(pending.Links["redirect"].Href, "knet-external") {
		t.Errorf("pending payment %+v", pending)
	}

	tests := []struct {
		give string
		want []string
		amt  []int64
	}{
		{"pay_a", []string{"Refund", "Capture", "Authorization"}, []int64{1000, 6540, 6540}},
		{"pay_b", []string{"Capture", "Authorization"}, []int64{100, 100}},
	}
	for _, tt := range tests {
		acts, err := c.GetPaymentActions(ctx, tt.give)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		var amts []int64
		for _, a := range acts {
			types, amts = append(types, a.Type), append(amts, a.Amount)
			if !a.Approved || a.ResponseCode != "10000" || a.ProcessedOn.IsZero() || !strings.HasPrefix(a.ID, "act_") {
				t.Errorf("action %+v", a)
			}
		}
		if !slices.Equal(types, tt.want) || !slices.Equal(amts, tt.amt) {
			t.Errorf("%s: %v %v", tt.give, types, amts)
		}
	}
	acts, _ := c.GetPaymentActions(ctx, "pay_a")
	if acts[2].Reference != "ORD-5023-4E89" || acts[2].AuthCode != "643381" || string(acts[1].Metadata) == "" {
		t.Errorf("authorization %+v", acts[2])
	}

	_, err = c.GetPayment(ctx, "pay_bad")
	var apiErr *checkout.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || apiErr.RequestID != "0HLUQS5FNKDTF:00000001" ||
		apiErr.ErrorType != "request_invalid" || !slices.Equal(apiErr.ErrorCodes, []string{"paging_limit_invalid"}) || apiErr.CkoRequestID != "cko-req-1" {
		t.Fatalf("422: %#v", err)
	}
	if !strings.Contains(err.Error(), "paging_limit_invalid") || !strings.Contains(err.Error(), "cko-req-1") {
		t.Errorf("message %q", err)
	}
}

func TestClientTolerantDecoding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":"pay_x","status":"Retry Scheduled","amount":10,"currency":"KWD","requested_on":"2024-01-01T00:00:00.1234567+00:00",
			"brand_new":{"x":[1,2]},"source":{"type":"knet","shiny":true},"metadata":{"n":1,"s":"x"}}`))
	}))
	defer srv.Close()
	c, _ := checkout.NewClient(checkout.ClientConfig{BaseURL: srv.URL, SecretKey: "sk_x"})
	p, err := c.GetPayment(context.Background(), "pay_x")
	if err != nil || p.Status != "Retry Scheduled" || string(p.Metadata) != `{"n":1,"s":"x"}` || p.RequestedOn.Nanosecond() != 123456700 {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestClientAgainstSimulator(t *testing.T) {
	e := mustClientEnv(t, ckosim.Config{}, nil)
	c := e.client(t, checkout.ClientConfig{})
	ctx := context.Background()
	id := e.create(t, 5000)
	if _, err := e.sim.Complete(id, ckosim.TestCard); err != nil {
		t.Fatal(err)
	}
	p, err := c.GetPayment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != checkout.StatusCaptured || p.Amount != 5000 || p.Balances == nil || p.Balances.AvailableToRefund != 5000 || p.Source.KNETResult != "Captured" {
		t.Fatalf("payment %+v", p)
	}
	r1, err := c.RefundPayment(ctx, id, checkout.RefundRequest{Amount: 1000, Reference: "part 1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.RefundPayment(ctx, id, checkout.RefundRequest{Amount: 1000, Reference: "part 1"})
	if err != nil || again.ActionID != r1.ActionID {
		t.Fatalf("repeated refund %+v %v, want action %s", again, err, r1.ActionID)
	}
	if _, err := c.RefundPayment(ctx, id, checkout.RefundRequest{Amount: 1000, Reference: "part 2"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.RefundPayment(ctx, id, checkout.RefundRequest{Amount: 9000})
	var apiErr *checkout.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || !slices.Equal(apiErr.ErrorCodes, []string{"refund_amount_exceeds_balance"}) {
		t.Fatalf("over-refund: %v", err)
	}
	if _, err := c.RefundPayment(ctx, id, checkout.RefundRequest{}); err != nil {
		t.Fatal(err)
	}
	acts, err := c.GetPaymentActions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, a := range acts {
		types = append(types, a.Type)
	}
	if !slices.Equal(types, []string{"Refund", "Refund", "Refund", "Capture", "Authorization"}) || acts[0].Amount != 3000 {
		t.Fatalf("actions %v (newest %+v)", types, acts[0])
	}
	p, _ = c.GetPayment(ctx, id)
	if p.Status != checkout.StatusRefunded || p.Balances.TotalRefunded != 5000 {
		t.Fatalf("after refunds %+v", p)
	}
}

func TestClientIdempotentVoid(t *testing.T) {
	e := mustClientEnv(t, ckosim.Config{}, nil)
	c := e.client(t, checkout.ClientConfig{})
	ctx := context.Background()
	id := e.create(t, 1000)
	a1, err := c.VoidPayment(ctx, id, checkout.VoidRequest{Reference: "sweep"})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c.VoidPayment(ctx, id, checkout.VoidRequest{Reference: "sweep"})
	if err != nil || a2.ActionID != a1.ActionID {
		t.Fatalf("second void %+v %v, want action %s", a2, err, a1.ActionID)
	}
	_, err = c.VoidPayment(ctx, id, checkout.VoidRequest{IdempotencyKey: "another"})
	if !errors.Is(err, checkout.ErrForbidden) {
		t.Fatalf("void with a new key: %v, want ErrForbidden", err)
	}
	var voids int
	for _, w := range e.sim.Webhooks() {
		if w.Type == "payment_voided" {
			voids++
		}
	}
	if voids != 1 {
		t.Fatalf("%d payment_voided, want 1", voids)
	}

	e.sim.SetFaults(ckosim.Faults{VoidForbidden: true})
	if _, err := c.VoidPayment(ctx, e.create(t, 1000), checkout.VoidRequest{}); !errors.Is(err, checkout.ErrForbidden) {
		t.Fatalf("void refused by fault: %v", err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	tests := []struct {
		a, b []string
		same bool
	}{
		{[]string{"void", "pay_1"}, []string{"void", "pay_1"}, true},
		{[]string{"void", "pay_1"}, []string{"void", "pay_2"}, false},
		{[]string{"refund", "pay_1", "100", ""}, []string{"refund", "pay_1", "100", ""}, true},
		{[]string{"refund", "pay_1", "100", ""}, []string{"refund", "pay_1", "200", ""}, false},
		{[]string{"refund", "pay_1", "100", "a"}, []string{"refund", "pay_1", "100", "b"}, false},
		{[]string{"refund", "pay_1", "1", "00"}, []string{"refund", "pay_1", "10", "0"}, false},
	}
	for _, tt := range tests {
		ka, kb := checkout.IdempotencyKey(tt.a[0], tt.a[1], tt.a[2:]...), checkout.IdempotencyKey(tt.b[0], tt.b[1], tt.b[2:]...)
		if (ka == kb) != tt.same || len(ka) > 64 {
			t.Errorf("%v %v: %q %q", tt.a, tt.b, ka, kb)
		}
	}
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get(checkout.IdempotencyHeader))
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"action_id":"act_1"}`))
	}))
	defer srv.Close()
	c, _ := checkout.NewClient(checkout.ClientConfig{BaseURL: srv.URL, SecretKey: "sk_x"})
	c.VoidPayment(context.Background(), "pay_1", checkout.VoidRequest{})
	c.RefundPayment(context.Background(), "pay_1", checkout.RefundRequest{Amount: 100})
	c.RefundPayment(context.Background(), "pay_1", checkout.RefundRequest{IdempotencyKey: "mine"})
	c.GetPayment(context.Background(), "pay_1")
	want := []string{checkout.IdempotencyKey("void", "pay_1"), checkout.IdempotencyKey("refund", "pay_1", "100", ""), "mine", ""}
	if !slices.Equal(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
}

func TestClientRetries(t *testing.T) {
	failFirst := func(k int, status int, retryAfter string) func(int64, http.ResponseWriter, *http.Request) bool {
		return func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n > int64(k) {
				return false
			}
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Cko-Request-Id", "req-fail")
			w.WriteHeader(status)
			return true
		}
	}
	tests := []struct {
		name      string
		wrap      func(int64, http.ResponseWriter, *http.Request) bool
		cfg       checkout.ClientConfig
		wantErr   error
		wantHits  int64
		wantSleep []time.Duration
	}{
		{"429 honours Retry-After", failFirst(2, 429, "2"), checkout.ClientConfig{}, nil, 3, []time.Duration{2 * time.Second, 2 * time.Second}},
		{"503 backs off exponentially", failFirst(3, 503, ""), checkout.ClientConfig{}, nil, 4, []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}},
		{"Retry-After under the back-off", failFirst(1, 500, "0"), checkout.ClientConfig{}, nil, 2, []time.Duration{150 * time.Millisecond}},
		{"Retry-After as a date", failFirst(1, 429, "Sun, 01 Mar 2026 10:00:05 GMT"), checkout.ClientConfig{}, nil, 2, []time.Duration{5 * time.Second}},
		{"back-off capped", failFirst(4, 502, ""), checkout.ClientConfig{MaxBackoff: 400 * time.Millisecond}, nil, 5, []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}},
		{"count bounded", failFirst(100, 500, ""), checkout.ClientConfig{MaxRetries: 2}, checkout.ErrServer, 3, []time.Duration{150 * time.Millisecond, 300 * time.Millisecond}},
		{"time bounded", failFirst(100, 429, "20"), checkout.ClientConfig{MaxElapsed: 30 * time.Second}, checkout.ErrRateLimited, 2, []time.Duration{20 * time.Second}},
		{"no retry on 422", failFirst(100, 422, ""), checkout.ClientConfig{}, nil, 1, nil},
		{"no retry on 404", nil, checkout.ClientConfig{}, checkout.ErrNotFound, 1, nil},
		{"no retry on 401", nil, checkout.ClientConfig{SecretKey: "sk_wrong_secret_value"}, checkout.ErrUnauthorized, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustClientEnv(t, ckosim.Config{}, tt.wrap)
			c := e.client(t, tt.cfg)
			id := e.create(t, 1000)
			if tt.name == "no retry on 404" {
				id = "pay_unknown"
			}
			_, err := c.GetPayment(context.Background(), id)
			switch {
			case tt.name == "no retry on 422":
				var apiErr *checkout.APIError
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || apiErr.CkoRequestID != "req-fail" {
					t.Fatalf("err %v", err)
				}
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if got := e.hits.Load(); got != tt.wantHits {
				t.Errorf("%d requests, want %d", got, tt.wantHits)
			}
			if got := e.time.waits(); !slices.Equal(got, tt.wantSleep) {
				t.Errorf("waits %v, want %v", got, tt.wantSleep)
			}
			if err != nil && strings.Contains(err.Error(), "sk_wrong_secret_value") {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

func TestClientRetriesNetworkErrors(t *testing.T) {
	e := mustClientEnv(t, ckosim.Config{}, func(n int64, w http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			return false
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return true
	})
	c := e.client(t, checkout.ClientConfig{})
	id := e.create(t, 1000)
	p, err := c.VoidPayment(context.Background(), id, checkout.VoidRequest{})
	if err != nil || p.ActionID == "" || e.hits.Load() != 2 {
		t.Fatalf("%+v %v after %d requests", p, err, e.hits.Load())
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	c, _ := checkout.NewClient(checkout.ClientConfig{BaseURL: srv.URL, SecretKey: "sk_x", Timeout: 20 * time.Millisecond, MaxRetries: -1})
	_, err := c.GetPayment(context.Background(), "pay_1")
	if !errors.Is(err, context.DeadlineExceeded) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err %v, want a timeout", err)
		}
	}
}

func TestClientConfigHidesKey(t *testing.T) {
	cfg := checkout.ClientConfig{BaseURL: "http://x", SecretKey: "sk_very_secret"}
	c, _ := checkout.NewClient(cfg)
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c)} {
		if strings.Contains(s, "sk_very_secret") {
			t.Errorf("key printed: %s", s)
		}
	}
}

func TestClientAuthModes(t *testing.T) {
	tests := []struct {
		mode ckosim.AuthMode
		bare bool
		want error
	}{
		{ckosim.AuthBearer, false, nil},
		{ckosim.AuthBearer, true, checkout.ErrUnauthorized},
		{ckosim.AuthBare, true, nil},
		{ckosim.AuthBare, false, checkout.ErrUnauthorized},
	}
	for _, tt := range tests {
		e := mustClientEnv(t, ckosim.Config{Auth: tt.mode}, nil)
		c := e.client(t, checkout.ClientConfig{BareKey: tt.bare})
		_, err := c.GetPayment(context.Background(), e.create(t, 1000))
		if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
			t.Errorf("%s bare=%v: %v, want %v", tt.mode, tt.bare, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), simKey) || !strings.Contains(err.Error(), "key")) {
			t.Errorf("401 message %q", err)
		}
	}
}

func TestClientRateLimit(t *testing.T) {
	e := mustClientEnv(t, ckosim.Config{}, nil)
	c := e.client(t, checkout.ClientConfig{RateLimit: 10, Burst: 2})
	id := e.create(t, 1000)
	const n = 42
	for range n {
		if _, err := c.GetPayment(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	times := e.sim.RequestTimes()
	if len(times) != n {
		t.Fatalf("%d requests", len(times))
	}
	// In any one-second window: at most rate + burst requests.
	for i := range times {
		j := i
		for j < len(times) && times[j].Sub(times[i]) < time.Second {
			j++
		}
		if j-i > 12 {
			t.Fatalf("%d requests within a second from %s", j-i, times[i])
		}
	}
	if elapsed := times[n-1].Sub(times[0]); elapsed < 3900*time.Millisecond {
		t.Fatalf("%d requests in %s at 10/s", n, elapsed)
	}
}

func TestClientSharedLimiterConcurrent(t *testing.T) {
	// Real clock, generous rate: many goroutines share one client without error or race.
	e := mustClientEnv(t, ckosim.Config{}, nil)
	c := e.client(t, checkout.ClientConfig{Now: time.Now, RateLimit: 1000, Burst: 50})
	id := e.create(t, 1000)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			if _, err := c.GetPayment(context.Background(), id); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkClientGetPayment(b *testing.B) {
	e := mustClientEnv(b, ckosim.Config{}, nil)
	c := e.client(b, checkout.ClientConfig{Now: time.Now, RateLimit: 1e9, Burst: 1 << 30})
	id := e.create(b, 1000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.GetPayment(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

func TestClientAgainstSimulatorFaults(t *testing.T) {
	e := mustClientEnv(t, ckosim.Config{Seed: 5, Faults: ckosim.Faults{API429Rate: 1, RetryAfter: ckosim.Duration(2 * time.Second)}}, nil)
	c := e.client(t, checkout.ClientConfig{MaxRetries: 3})
	id := e.create(t, 1000)
	if _, err := c.GetPayment(context.Background(), id); !errors.Is(err, checkout.ErrRateLimited) {
		t.Fatalf("err %v, want ErrRateLimited", err)
	}
	if got := e.time.waits(); !slices.Equal(got, []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}) {
		t.Fatalf("waits %v", got)
	}

	e.sim.SetFaults(ckosim.Faults{API5xxRate: 0.3})
	c = e.client(t, checkout.ClientConfig{})
	for range 20 {
		if _, err := c.GetPayment(context.Background(), id); err != nil {
			t.Fatalf("with 30%% of answers 5xx and 4 retries (seeded): %v", err)
		}
	}
	if n := e.hits.Load(); n <= 24 {
		t.Fatalf("%d requests: no 5xx was injected", n)
	}
}
