// Package ckosim simulates Checkout.com's payments API for KNET, closely enough that the receiver
// and the reconciler can be tested for real and shown working on a laptop: POST /payments with a
// KNET source (validated like Checkout.com), the customer's KNET page with its seven-minute rule,
// GET /payments/{id} and /actions, voids and (multiple partial) refunds with idempotency keys, and
// signed Workflows webhooks retried on Checkout.com's schedule. Faults — lost, duplicated and
// delayed webhooks, API 5xx and 429, latency, voids refused — are drawn from a seeded generator,
// so a run is reproducible. Time comes from a Clock that tests move by hand.
//
// The library is driven in-process (New, CreatePayment, Complete, Advance, WaitIdle…) or over
// HTTP through Handler, which serves the API, the KNET page and the /_sim/ control API.
package ckosim

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"knetrecon/internal/checkout"
)

// AuthMode says how the simulator expects the API key in the Authorization header.
type AuthMode string

// Authorization header forms: "Bearer sk_…" (current accounts), the bare key (legacy ABC), or either.
const (
	AuthBearer AuthMode = "bearer"
	AuthBare   AuthMode = "bare"
	AuthEither AuthMode = "either"
)

// DefaultExpiry is KNET's limit between landing on the KNET page and completing the payment.
const DefaultExpiry = 7 * time.Minute

// DefaultRetrySchedule is the Workflows webhook retry schedule: eight re-sends after a failure.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 4 * time.Hour, 12 * time.Hour, 12 * time.Hour,
}

// Errors of the library API, returned by the control methods and mapped to HTTP by Handler.
var (
	ErrUnknownPayment = errors.New("ckosim: unknown payment")
	ErrNotPending     = errors.New("ckosim: payment is no longer pending")
	ErrNotAllowed     = errors.New("ckosim: action not allowed in this status")
	ErrExceedsBalance = errors.New("ckosim: refund exceeds the amount available to refund")
)

// ValidationError is a refused POST /payments: Checkout.com's error_codes for the request.
type ValidationError struct {
	Codes []string
}

// Error lists the codes.
func (e *ValidationError) Error() string {
	return "ckosim: request_invalid: " + strings.Join(e.Codes, ", ")
}

// Config configures a Sim. Zero values take the defaults noted on each field.
type Config struct {
	// SecretKey is the API key accepted; empty accepts any request (no 401).
	SecretKey string
	// Auth is the Authorization form accepted; default AuthBearer.
	Auth AuthMode
	// PublicURL is the base of the links the simulator hands out (redirect, _links); empty takes
	// http://<Host> of each request, or http://ckosim.local for payments created in-process.
	PublicURL string
	// WebhookURL receives the webhooks; empty records them without delivering.
	WebhookURL string
	// WebhookKey signs each webhook body (Cko-Signature).
	WebhookKey string
	// WebhookAuthorization, when set, is sent as the Authorization header of each webhook.
	WebhookAuthorization string
	// Expiry is the KNET page limit; default DefaultExpiry (7m).
	Expiry time.Duration
	// RetrySchedule is the webhook re-send schedule; default DefaultRetrySchedule.
	RetrySchedule []time.Duration
	// TimeScale multiplies every webhook retry and fault delay (0.001 makes 5m into 300ms);
	// default 1.
	TimeScale float64
	// DeliveryTimeout bounds one webhook delivery in real time; default 10s, as Checkout.com.
	DeliveryTimeout time.Duration
	// Seed drives every random choice (ids, faults); the same seed and calls give the same run.
	Seed uint64
	// Faults are the faults switched on at start; SetFaults changes them later.
	Faults Faults
	// Clock is the time source; default the wall clock (which Advance can still move forward).
	Clock Clock
	// HTTPClient delivers webhooks; default a plain client (DeliveryTimeout applies).
	HTTPClient *http.Client
}

// Card is what the customer types on the KNET page.
type Card struct {
	Bank        string
	Number      string
	ExpiryMonth string // "09"
	ExpiryYear  string // "2025"
	PIN         string
}

// TestCard is Checkout.com's KNET sandbox card: it approves. Any other card, or a wrong PIN,
// declines.
var TestCard = Card{Bank: "Knet Test Card [KNET1]", Number: "8888880000000001", ExpiryMonth: "09", ExpiryYear: "2025", PIN: "1234"}

// PaymentRequest is a KNET payment request, as POST /payments takes it.
type PaymentRequest struct {
	Amount     int64
	Currency   string
	Reference  string
	Source     checkout.Source
	Customer   checkout.Customer
	Metadata   json.RawMessage
	SuccessURL string
	FailureURL string
}

// Created is the result of creating a payment: it is Pending and waits on the KNET page.
type Created struct {
	ID          string
	RedirectURL string
}

type action struct {
	ID              string
	Type            string
	Amount          int64
	Approved        bool
	ProcessedOn     time.Time
	ResponseCode    string
	ResponseSummary string
	Reference       string
	AuthCode        string
}

type payment struct {
	ID          string
	Token       string
	Base        string
	RequestedOn time.Time
	Amount      int64
	Currency    string
	Reference   string
	Status      string
	Approved    *bool
	Source      checkout.Source
	Customer    checkout.Customer
	Metadata    json.RawMessage
	SuccessURL  string
	FailureURL  string
	Landed      time.Time
	Actions     []action // oldest first
	Captured    int64
	Refunded    int64
}

func (p *payment) balances() checkout.Balances {
	b := checkout.Balances{TotalCaptured: p.Captured, TotalRefunded: p.Refunded, AvailableToRefund: p.Captured - p.Refunded}
	if p.Captured > 0 {
		b.TotalAuthorized = p.Amount
	}
	return b
}

// maxRequestLog bounds RequestTimes: past it, the older half is forgotten.
const maxRequestLog = 100_000

type idemEntry struct {
	route   string
	pending bool // the first request with this key is still being answered
	status  int
	body    []byte
	at      time.Time
}

// Sim is a running simulator. Its methods are safe for concurrent use; Close stops it.
type Sim struct {
	cfg   Config
	clock Clock

	mu       sync.Mutex // guards everything below and the random generators
	payments map[string]*payment
	byToken  map[string]*payment
	order    []*payment
	idem     map[string]idemEntry
	faults   Faults
	ids      *rand.Rand
	apiRng   *rand.Rand
	hookRng  *rand.Rand
	dropNext int
	requests []time.Time

	hooks  *deliverer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a running simulator; its webhook delivery goroutine stops on Close.
func New(cfg Config) *Sim {
	if cfg.Auth == "" {
		cfg.Auth = AuthBearer
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = DefaultRetrySchedule
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = NewRealClock()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Sim{
		cfg:      cfg,
		clock:    cfg.Clock,
		payments: map[string]*payment{},
		byToken:  map[string]*payment{},
		idem:     map[string]idemEntry{},
		faults:   cfg.Faults,
		ids:      rand.New(rand.NewPCG(cfg.Seed, 1)),
		apiRng:   rand.New(rand.NewPCG(cfg.Seed, 2)),
		hookRng:  rand.New(rand.NewPCG(cfg.Seed, 3)),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hooks = newDeliverer(s)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.hooks.run(s.ctx)
	}()
	return s
}

// Close stops webhook delivery (an attempt in flight is cut short) and waits for it to end.
func (s *Sim) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Clock is the simulator's clock (the Config's, or the wall clock).
func (s *Sim) Clock() Clock { return s.clock }

// Now reads the simulator's clock.
func (s *Sim) Now() time.Time { return s.clock.Now() }

// Advance moves the simulator's clock forward by d, when the clock can be moved (the FakeClock
// and the default wall clock can), and lets webhook retries now due go out.
func (s *Sim) Advance(d time.Duration) error {
	a, ok := s.clock.(Advancer)
	if !ok {
		return errors.New("ckosim: this clock cannot be advanced")
	}
	a.Advance(d)
	s.hooks.poke()
	return nil
}

// Expiry is the KNET page limit in force.
func (s *Sim) Expiry() time.Duration { return s.cfg.Expiry }

// SetFaults replaces the faults in force.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the faults in force.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// DropNext makes the next n webhooks be lost: recorded as dropped, never delivered.
func (s *Sim) DropNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropNext += n
}

// RequestTimes returns the clock time of every API request received (not the KNET page nor the
// control API), oldest first: tests measure a client's rate with it.
func (s *Sim) RequestTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.requests...)
}

// CreatePayment validates req like POST /payments does and creates a Pending payment, sending
// payment_pending. A refused request returns a *ValidationError.
func (s *Sim) CreatePayment(req PaymentRequest) (Created, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if codes := validate(strconv.FormatInt(req.Amount, 10), req); len(codes) > 0 {
		return Created{}, &ValidationError{Codes: codes}
	}
	p := s.createLocked(req, s.base(""))
	return Created{ID: p.ID, RedirectURL: p.redirectURL()}, nil
}

// Land records the customer's arrival on the KNET page: the expiry runs from the first landing.
func (s *Sim) Land(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[id]
	if !ok {
		return ErrUnknownPayment
	}
	s.landLocked(p)
	return nil
}

// Complete submits card on the KNET page and returns the resulting status: Captured for the test
// card, Declined for any other card or PIN, Expired when more than the expiry has passed since
// landing. A payment not yet landed lands now.
func (s *Sim) Complete(id string, card Card) (string, error) {
	return s.finish(id, &card)
}

// Decline submits a wrong PIN: the payment is Declined.
func (s *Sim) Decline(id string) (string, error) {
	card := TestCard
	card.PIN = "0000"
	return s.finish(id, &card)
}

// Cancel presses Cancel on the KNET page: the payment is Canceled (or Expired if too late).
func (s *Sim) Cancel(id string) (string, error) { return s.finish(id, nil) }

// Expire makes the customer come back after the expiry: Checkout.com voids the payment as
// Expired and sends payment_expired. It takes no clock time.
func (s *Sim) Expire(id string) (string, error) {
	s.mu.Lock()
	p, ok := s.payments[id]
	if ok && p.Status == checkout.StatusPending {
		p.Landed = s.clock.Now().Add(-s.cfg.Expiry - time.Second)
	}
	s.mu.Unlock()
	return s.finish(id, &TestCard)
}

// Void voids a Pending payment as POST /payments/{id}/voids does (Voided, payment_voided) and
// returns the action id; ErrNotAllowed when the status does not allow it or the fault says so.
func (s *Sim) Void(id, reference string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[id]
	if !ok {
		return "", ErrUnknownPayment
	}
	act, err := s.voidLocked(p, reference)
	if err != nil {
		return "", err
	}
	return act.ID, nil
}

// Refund refunds amount (zero: all that is left) of a captured payment as POST
// /payments/{id}/refunds does and returns the action id. It never refunds more than captured.
func (s *Sim) Refund(id string, amount int64, reference string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[id]
	if !ok {
		return "", ErrUnknownPayment
	}
	act, err := s.refundLocked(p, amount, reference)
	if err != nil {
		return "", err
	}
	return act.ID, nil
}

// Payment returns the payment as GET /payments/{id} shows it.
func (s *Sim) Payment(id string) (*checkout.Payment, error) {
	s.mu.Lock()
	p, ok := s.payments[id]
	var body []byte
	if ok {
		body, _ = json.Marshal(s.wirePayment(p))
	}
	s.mu.Unlock()
	if !ok {
		return nil, ErrUnknownPayment
	}
	var out checkout.Payment
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("ckosim: decode own payment: %w", err)
	}
	return &out, nil
}

// PaymentIDs lists every payment id in creation order.
func (s *Sim) PaymentIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.order))
	for i, p := range s.order {
		ids[i] = p.ID
	}
	return ids
}

// Webhooks returns a copy of every webhook emitted so far, oldest first, with its delivery story.
func (s *Sim) Webhooks() []WebhookRecord { return s.hooks.records() }

// WaitIdle returns once no webhook delivery is running or due at the current clock time, or when
// ctx ends. Re-sends scheduled later do not count: move the clock to let them go out.
func (s *Sim) WaitIdle(ctx context.Context) error { return s.hooks.waitIdle(ctx) }

// --- state machine, all under s.mu ---

func (s *Sim) base(reqBase string) string {
	switch {
	case s.cfg.PublicURL != "":
		return s.cfg.PublicURL
	case reqBase != "":
		return reqBase
	}
	return "http://ckosim.local"
}

func (p *payment) redirectURL() string { return p.Base + "/knet/" + p.Token + "/pay" }

func (s *Sim) newID(prefix string) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], s.ids.Uint64())
	binary.LittleEndian.PutUint64(b[8:], s.ids.Uint64())
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func (s *Sim) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + s.ids.IntN(10)))
	}
	return b.String()
}

func (s *Sim) createLocked(req PaymentRequest, base string) *payment {
	now := s.clock.Now()
	p := &payment{
		ID:          s.newID("pay_"),
		Token:       s.newID("tok_"),
		Base:        base,
		RequestedOn: now,
		Amount:      req.Amount,
		Currency:    strings.ToUpper(req.Currency),
		Reference:   req.Reference,
		Status:      checkout.StatusPending,
		Source:      req.Source,
		Customer:    req.Customer,
		Metadata:    req.Metadata,
		SuccessURL:  req.SuccessURL,
		FailureURL:  req.FailureURL,
	}
	p.Source.Type = "knet"
	if p.Customer.ID == "" {
		p.Customer.ID = s.newID("cus_")
	}
	s.payments[p.ID] = p
	s.byToken[p.Token] = p
	s.order = append(s.order, p)
	s.emitLocked(p, "payment_pending", nil, p.Amount)
	return p
}

func (s *Sim) landLocked(p *payment) {
	if p.Landed.IsZero() {
		p.Landed = s.clock.Now()
	}
}

func (s *Sim) addAction(p *payment, typ string, amount int64, approved bool, code, summary, ref string) *action {
	// Actions of one payment get strictly increasing times (at Checkout.com's 100ns precision), so
	// that sorting by processed_on keeps their order even on a clock that does not move.
	at := s.clock.Now()
	if n := len(p.Actions); n > 0 && !at.After(p.Actions[n-1].ProcessedOn) {
		at = p.Actions[n-1].ProcessedOn.Add(100 * time.Nanosecond)
	}
	a := action{ID: s.newID("act_"), Type: typ, Amount: amount, Approved: approved, ProcessedOn: at,
		ResponseCode: code, ResponseSummary: summary, Reference: ref}
	p.Actions = append(p.Actions, a)
	return &p.Actions[len(p.Actions)-1]
}

func ptr[T any](v T) *T { return &v }

// finish is the customer's return from the KNET page: card nil means Cancel.
func (s *Sim) finish(id string, card *Card) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[id]
	if !ok {
		return "", ErrUnknownPayment
	}
	if p.Status != checkout.StatusPending {
		return p.Status, ErrNotPending
	}
	s.landLocked(p)
	now := s.clock.Now()
	switch {
	case now.Sub(p.Landed) > s.cfg.Expiry:
		p.Status, p.Approved = checkout.StatusExpired, ptr(false)
		p.Source.KNETResult = "EXPIRED"
		a := s.addAction(p, "Void", p.Amount, true, "10000", "Approved", "")
		s.emitLocked(p, "payment_expired", a, p.Amount)
	case card == nil:
		p.Status, p.Approved = checkout.StatusCanceled, ptr(false)
		p.Source.KNETResult = "CANCELED"
		p.Source.Error, p.Source.ErrorText = "IPAY0100048", "Cancelled"
		a := s.addAction(p, "Authorization", p.Amount, false, "20005", "Canceled by customer", "")
		s.emitLocked(p, "payment_canceled", a, p.Amount)
	case !approves(*card):
		p.Status, p.Approved = checkout.StatusDeclined, ptr(false)
		s.fillKNET(p, now)
		p.Source.KNETResult = "NOT CAPTURED"
		p.Source.AuthCode = ""
		p.Source.AuthResponseCode = "55"
		code, summary := "20055", "Incorrect PIN"
		if normalizeCard(card.Number) != TestCard.Number {
			code, summary, p.Source.AuthResponseCode = "20005", "Declined - Do Not Honour", "05"
		}
		a := s.addAction(p, "Authorization", p.Amount, false, code, summary, "")
		s.emitLocked(p, "payment_declined", a, p.Amount)
	default:
		p.Status, p.Approved = checkout.StatusCaptured, ptr(true)
		s.fillKNET(p, now)
		p.Source.KNETResult = "Captured"
		auth := s.addAction(p, "Authorization", p.Amount, true, "10000", "Approved", p.Reference)
		auth.AuthCode = p.Source.AuthCode
		authCopy := *auth
		p.Captured = p.Amount
		capture := s.addAction(p, "Capture", p.Amount, true, "10000", "Approved", "")
		s.emitLocked(p, "payment_approved", &authCopy, p.Amount)
		s.emitLocked(p, "payment_captured", capture, p.Amount)
	}
	return p.Status, nil
}

func (s *Sim) fillKNET(p *payment, now time.Time) {
	p.Source.KNETPaymentID = "1" + s.digits(17)
	p.Source.BankReference = s.digits(12)
	p.Source.KNETTransactionID = "2" + s.digits(14)
	p.Source.AuthCode = "B" + s.digits(5)
	p.Source.PostDate = now.Format("0102")
	p.Source.AVR = "N"
	p.Source.InquiryResult = ""
}

func normalizeCard(n string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, n)
}

func approves(c Card) bool {
	month := c.ExpiryMonth
	if len(month) == 1 {
		month = "0" + month
	}
	year := c.ExpiryYear
	if len(year) == 2 {
		year = "20" + year
	}
	return normalizeCard(c.Number) == TestCard.Number && month == TestCard.ExpiryMonth &&
		year == TestCard.ExpiryYear && c.PIN == TestCard.PIN
}

func (s *Sim) voidLocked(p *payment, reference string) (*action, error) {
	if s.faults.VoidForbidden {
		return nil, ErrNotAllowed
	}
	if p.Status != checkout.StatusPending && p.Status != checkout.StatusAuthorized {
		return nil, ErrNotAllowed
	}
	p.Status, p.Approved = checkout.StatusVoided, ptr(false)
	a := s.addAction(p, "Void", p.Amount, true, "10000", "Approved", reference)
	s.emitLocked(p, "payment_voided", a, p.Amount)
	return a, nil
}

func (s *Sim) refundLocked(p *payment, amount int64, reference string) (*action, error) {
	if p.Status != checkout.StatusCaptured && p.Status != checkout.StatusPartiallyRefunded {
		return nil, ErrNotAllowed
	}
	left := p.Captured - p.Refunded
	if amount == 0 {
		amount = left
	}
	if amount < 0 || amount%10 != 0 {
		return nil, &ValidationError{Codes: []string{"amount_invalid"}}
	}
	if amount > left {
		return nil, ErrExceedsBalance
	}
	p.Refunded += amount
	if p.Refunded == p.Captured {
		p.Status = checkout.StatusRefunded
	} else {
		p.Status = checkout.StatusPartiallyRefunded
	}
	a := s.addAction(p, "Refund", amount, true, "10000", "Approved", reference)
	s.emitLocked(p, "payment_refunded", a, amount)
	return a, nil
}

// --- wire shapes ---

type wirePayment struct {
	ID          string                   `json:"id"`
	RequestedOn string                   `json:"requested_on"`
	Source      checkout.Source          `json:"source"`
	Amount      int64                    `json:"amount"`
	Currency    string                   `json:"currency"`
	PaymentType string                   `json:"payment_type"`
	Reference   string                   `json:"reference,omitempty"`
	Status      string                   `json:"status"`
	Approved    *bool                    `json:"approved,omitempty"`
	Risk        wireRisk                 `json:"risk"`
	Customer    checkout.Customer        `json:"customer"`
	Metadata    json.RawMessage          `json:"metadata,omitempty"`
	Balances    checkout.Balances        `json:"balances"`
	Links       map[string]checkout.Link `json:"_links"`
}

type wireRisk struct {
	Flagged bool `json:"flagged"`
}

type wireAction struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	ProcessedOn     string `json:"processed_on"`
	Amount          int64  `json:"amount"`
	Approved        bool   `json:"approved"`
	AuthCode        string `json:"auth_code,omitempty"`
	ResponseCode    string `json:"response_code"`
	ResponseSummary string `json:"response_summary"`
	Reference       string `json:"reference,omitempty"`
}

// stamp formats processing times as Checkout.com does: seven fractional digits.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func (s *Sim) wirePayment(p *payment) wirePayment {
	self := p.Base + "/payments/" + p.ID
	links := map[string]checkout.Link{"self": {Href: self}, "actions": {Href: self + "/actions"}}
	switch p.Status {
	case checkout.StatusPending:
		links["redirect"] = checkout.Link{Href: p.redirectURL()}
		links["void"] = checkout.Link{Href: self + "/voids"}
	case checkout.StatusCaptured, checkout.StatusPartiallyRefunded:
		links["refund"] = checkout.Link{Href: self + "/refunds"}
	}
	return wirePayment{
		ID: p.ID, RequestedOn: p.RequestedOn.UTC().Format(time.RFC3339), Source: p.Source,
		Amount: p.Amount, Currency: p.Currency, PaymentType: "Regular", Reference: p.Reference,
		Status: p.Status, Approved: p.Approved, Customer: p.Customer, Metadata: p.Metadata,
		Balances: p.balances(), Links: links,
	}
}

func wireActions(p *payment) []wireAction {
	out := make([]wireAction, 0, len(p.Actions))
	for i := len(p.Actions) - 1; i >= 0; i-- {
		a := p.Actions[i]
		out = append(out, wireAction{ID: a.ID, Type: a.Type, ProcessedOn: stamp(a.ProcessedOn), Amount: a.Amount,
			Approved: a.Approved, AuthCode: a.AuthCode, ResponseCode: a.ResponseCode,
			ResponseSummary: a.ResponseSummary, Reference: a.Reference})
	}
	return out
}

// validate applies Checkout.com's KNET rules and returns the error codes, none when valid.
func validate(amount string, req PaymentRequest) []string {
	var codes []string
	switch {
	case amount == "" || amount == "0":
		codes = append(codes, "amount_required")
	case !allDigits(amount) || len(amount) > 9 || amount[0] == '0' || amount[len(amount)-1] != '0':
		codes = append(codes, "amount_invalid")
	}
	switch {
	case req.Currency == "":
		codes = append(codes, "currency_required")
	case !strings.EqualFold(req.Currency, "KWD"):
		codes = append(codes, "currency_not_supported")
	}
	src := req.Source
	if src.Type == "" {
		return append(codes, "source_required")
	}
	if src.Type != "knet" {
		return append(codes, "payment_source_not_supported")
	}
	if src.Language != "en" && src.Language != "ar" {
		codes = append(codes, "language_invalid")
	}
	for i, f := range []string{src.UserDefinedField1, src.UserDefinedField2, src.UserDefinedField3, src.UserDefinedField4, src.UserDefinedField5} {
		if !udfValid(f) {
			codes = append(codes, fmt.Sprintf("user_defined_field%d_invalid", i+1))
		}
	}
	if src.CardToken != "" && (len(src.CardToken) != 8 || !allDigits(src.CardToken)) {
		codes = append(codes, "card_token_invalid")
	}
	if src.CardToken != "" && src.UserDefinedField3 != "" {
		codes = append(codes, "user_defined_field3_not_allowed_with_card_token")
	}
	if src.PTLF != "" && src.UserDefinedField5 != "" {
		codes = append(codes, "user_defined_field5_not_allowed_with_ptlf")
	}
	return codes
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func udfValid(s string) bool {
	if len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r == ' ' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
