package checkout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// DefaultBaseURL is Checkout.com's sandbox API, used when ClientConfig.BaseURL is empty.
const DefaultBaseURL = "https://api.sandbox.checkout.com"

// IdempotencyHeader is the header Checkout.com reads to recognise a repeated POST.
const IdempotencyHeader = "Cko-Idempotency-Key"

// RequestIDHeader is the response header naming Checkout.com's request; worth logging.
const RequestIDHeader = "Cko-Request-Id"

// Payment statuses as Checkout.com spells them. The list is not closed: Payment.Status keeps
// whatever string the API sent.
const (
	StatusPending           = "Pending"
	StatusAuthorized        = "Authorized"
	StatusCardVerified      = "Card Verified"
	StatusVoided            = "Voided"
	StatusPartiallyCaptured = "Partially Captured"
	StatusCaptured          = "Captured"
	StatusPartiallyRefunded = "Partially Refunded"
	StatusRefunded          = "Refunded"
	StatusDeclined          = "Declined"
	StatusCanceled          = "Canceled"
	StatusExpired           = "Expired"
	StatusPaid              = "Paid"
)

// Sentinel errors of the API client, matched with errors.Is against the *APIError returned.
var (
	// ErrNotFound is a 404: Checkout.com does not know the payment.
	ErrNotFound = errors.New("checkout: payment not found")
	// ErrUnauthorized is a 401: the secret key was refused. Check the key and whether the account
	// wants "Bearer sk_…" (current accounts) or the bare key (legacy ABC accounts).
	ErrUnauthorized = errors.New("checkout: secret key refused (401): check the configured key and its Bearer/bare setting")
	// ErrForbidden is a 403: the action (void, refund) is not allowed for this payment now.
	ErrForbidden = errors.New("checkout: action not allowed (403)")
	// ErrRateLimited is a 429 that outlived the client's retries.
	ErrRateLimited = errors.New("checkout: rate limited (429)")
	// ErrServer is a 5xx that outlived the client's retries.
	ErrServer = errors.New("checkout: server error")
)

// APIError is a non-2xx answer from the API. Its fields come from the JSON error body
// ({request_id, error_type, error_codes}) when there is one, and from the Cko-Request-Id header.
type APIError struct {
	Method       string
	Path         string
	StatusCode   int
	RequestID    string
	ErrorType    string
	ErrorCodes   []string
	CkoRequestID string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

// Error describes the failure without any credential.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checkout: %s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	switch e.StatusCode {
	case http.StatusUnauthorized:
		b.WriteString(" (secret key refused: check the key and its Bearer/bare setting)")
	case http.StatusForbidden:
		b.WriteString(" (action not allowed)")
	}
	if e.ErrorType != "" {
		fmt.Fprintf(&b, ": %s", e.ErrorType)
	}
	if len(e.ErrorCodes) > 0 {
		fmt.Fprintf(&b, " [%s]", strings.Join(e.ErrorCodes, ", "))
	}
	id := e.CkoRequestID
	if id == "" {
		id = e.RequestID
	}
	if id != "" {
		fmt.Fprintf(&b, " (request %s)", id)
	}
	return b.String()
}

// Unwrap maps the status to the package's sentinels so callers can use errors.Is.
func (e *APIError) Unwrap() error {
	switch {
	case e.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case e.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.StatusCode == http.StatusForbidden:
		return ErrForbidden
	case e.StatusCode == http.StatusTooManyRequests:
		return ErrRateLimited
	case e.StatusCode >= 500:
		return ErrServer
	}
	return nil
}

// Temporary reports whether the request may succeed if tried again: 429 and 5xx.
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Link is one entry of a `_links` object.
type Link struct {
	Href string `json:"href"`
}

// Source is a payment's `source`. KNET payments fill the KNET fields; card payments the card ones.
// knet_result is a free string: act on Payment.Status, never on it.
type Source struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`

	Language          string `json:"language,omitempty"`
	UserDefinedField1 string `json:"user_defined_field1,omitempty"`
	UserDefinedField2 string `json:"user_defined_field2,omitempty"`
	UserDefinedField3 string `json:"user_defined_field3,omitempty"`
	UserDefinedField4 string `json:"user_defined_field4,omitempty"`
	UserDefinedField5 string `json:"user_defined_field5,omitempty"`
	CardToken         string `json:"card_token,omitempty"`
	PTLF              string `json:"ptlf,omitempty"`
	KNETPaymentID     string `json:"knet_payment_id,omitempty"`
	KNETResult        string `json:"knet_result,omitempty"`
	InquiryResult     string `json:"inquiry_result,omitempty"`
	BankReference     string `json:"bank_reference,omitempty"`
	KNETTransactionID string `json:"knet_transaction_id,omitempty"`
	AuthCode          string `json:"auth_code,omitempty"`
	AuthResponseCode  string `json:"auth_response_code,omitempty"`
	PostDate          string `json:"post_date,omitempty"`
	AVR               string `json:"avr,omitempty"`
	Error             string `json:"error,omitempty"`
	ErrorText         string `json:"error_text,omitempty"`

	Last4       string `json:"last4,omitempty"`
	Bin         string `json:"bin,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Customer is a payment's `customer`.
type Customer struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// Payment is the answer to GET /payments/{id}. Status is kept as sent, so a status this code does
// not know is carried, not refused. Metadata stays raw JSON because its values vary in type.
type Payment struct {
	ID              string          `json:"id"`
	ActionID        string          `json:"action_id,omitempty"`
	RequestedOn     time.Time       `json:"requested_on"`
	Amount          int64           `json:"amount"`
	Currency        string          `json:"currency"`
	Status          string          `json:"status"`
	Approved        bool            `json:"approved"`
	Reference       string          `json:"reference,omitempty"`
	PaymentType     string          `json:"payment_type,omitempty"`
	ResponseCode    string          `json:"response_code,omitempty"`
	ResponseSummary string          `json:"response_summary,omitempty"`
	Source          Source          `json:"source"`
	Customer        *Customer       `json:"customer,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	Balances        *Balances       `json:"balances,omitempty"`
	Links           map[string]Link `json:"_links,omitempty"`
}

// Action is one entry of GET /payments/{id}/actions. Type is Authorization, Card Verification,
// Void, Capture, Refund, Payout or Return (kept as sent).
type Action struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Amount          int64           `json:"amount"`
	Approved        bool            `json:"approved"`
	ProcessedOn     time.Time       `json:"processed_on"`
	ResponseCode    string          `json:"response_code,omitempty"`
	ResponseSummary string          `json:"response_summary,omitempty"`
	Reference       string          `json:"reference,omitempty"`
	AuthCode        string          `json:"auth_code,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
}

// Accepted is the 202 answer to a void or a refund: the action is queued and its outcome arrives
// later as a webhook (payment_voided, payment_refunded…).
type Accepted struct {
	ActionID  string          `json:"action_id"`
	Reference string          `json:"reference,omitempty"`
	Links     map[string]Link `json:"_links,omitempty"`
}

// VoidRequest is the optional body of a void.
type VoidRequest struct {
	Reference string          `json:"reference,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	// IdempotencyKey overrides the key derived from the payment id (see IdempotencyKey).
	IdempotencyKey string `json:"-"`
}

// RefundRequest is the body of a refund. Amount zero refunds what is left to refund.
type RefundRequest struct {
	Amount    int64           `json:"amount,omitempty"`
	Reference string          `json:"reference,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	// IdempotencyKey overrides the key derived from the payment id, amount and reference. Two
	// distinct partial refunds of the same amount need distinct references or keys.
	IdempotencyKey string `json:"-"`
}

// IdempotencyKey derives the Cko-Idempotency-Key of an intent: the same payment, action and parts
// always give the same key, so a retried void is the same void for Checkout.com.
func IdempotencyKey(action, paymentID string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(action))
	h.Write([]byte{0})
	h.Write([]byte(paymentID))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return "knetrecon-" + action + "-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// ClientConfig configures a Client. Zero values take the defaults noted on each field.
type ClientConfig struct {
	// BaseURL is the API root (KNETRECON_CHECKOUT_URL); default DefaultBaseURL.
	BaseURL string
	// SecretKey is the sk_… key (KNETRECON_CHECKOUT_SECRET_KEY); it is sent, never printed.
	SecretKey string
	// BareKey sends the key without "Bearer ", as legacy (ABC) accounts expect.
	BareKey bool
	// HTTPClient does the requests; default a client without its own timeout (Timeout applies).
	HTTPClient *http.Client
	// Timeout bounds each attempt; default 10s.
	Timeout time.Duration
	// MaxRetries bounds the re-tries after the first attempt; default 4, negative for none.
	MaxRetries int
	// MaxElapsed bounds the whole call including waits; default 30s.
	MaxElapsed time.Duration
	// MinBackoff and MaxBackoff bound the exponential back-off; defaults 200ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// RateLimit is requests per second for all callers of this client; default 50. Burst default 10.
	RateLimit float64
	Burst     int
	// Limiter, when set, is shared with other clients and replaces RateLimit and Burst.
	Limiter *rate.Limiter
	// Now and Sleep are the clock; tests inject fakes so back-off takes no real time.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0,1); default math/rand/v2.
	Jitter func() float64
}

// String describes the configuration with the key hidden, so that printing a ClientConfig
// (%v, %+v) can never leak it.
func (c ClientConfig) String() string {
	key := "unset"
	if c.SecretKey != "" {
		key = "set"
	}
	return fmt.Sprintf("ClientConfig{BaseURL:%s SecretKey:%s BareKey:%v Timeout:%s MaxRetries:%d MaxElapsed:%s RateLimit:%g Burst:%d}",
		c.BaseURL, key, c.BareKey, c.Timeout, c.MaxRetries, c.MaxElapsed, c.RateLimit, c.Burst)
}

// GoString hides the key from %#v as well.
func (c ClientConfig) GoString() string { return c.String() }

// Client calls Checkout.com's payments API. It is safe for concurrent use; its rate limiter is
// shared by every caller.
type Client struct {
	base    *url.URL
	auth    string
	http    *http.Client
	cfg     ClientConfig
	limiter *rate.Limiter
}

// NewClient checks cfg, fills in defaults and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("checkout: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.SecretKey == "" {
		return nil, errors.New("checkout: secret key is empty")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.MaxElapsed <= 0 {
		cfg.MaxElapsed = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 50
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	lim := cfg.Limiter
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.Burst)
	}
	auth := cfg.SecretKey
	if !cfg.BareKey {
		auth = "Bearer " + auth
	}
	return &Client{base: base, auth: auth, http: cfg.HTTPClient, cfg: cfg, limiter: lim}, nil
}

// String hides the key.
func (c *Client) String() string { return "checkout.Client(" + c.base.String() + ")" }

// GetPayment returns the payment's details. A 404 matches ErrNotFound.
func (c *Client) GetPayment(ctx context.Context, id string) (*Payment, error) {
	var p Payment
	if err := c.do(ctx, http.MethodGet, "/payments/"+url.PathEscape(id), nil, "", &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// GetPaymentActions returns the payment's actions, newest first as Checkout.com sends them.
func (c *Client) GetPaymentActions(ctx context.Context, id string) ([]Action, error) {
	var actions []Action
	if err := c.do(ctx, http.MethodGet, "/payments/"+url.PathEscape(id)+"/actions", nil, "", &actions); err != nil {
		return nil, err
	}
	return actions, nil
}

// VoidPayment asks Checkout.com to void the payment. The idempotency key defaults to one derived
// from the payment id, so repeating the call repeats the same void. A 403 matches ErrForbidden.
func (c *Client) VoidPayment(ctx context.Context, id string, req VoidRequest) (*Accepted, error) {
	key := req.IdempotencyKey
	if key == "" {
		key = IdempotencyKey("void", id)
	}
	var a Accepted
	if err := c.do(ctx, http.MethodPost, "/payments/"+url.PathEscape(id)+"/voids", req, key, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// RefundPayment asks Checkout.com to refund req.Amount (zero: all that is left). The idempotency
// key defaults to one derived from the payment id, amount and reference.
func (c *Client) RefundPayment(ctx context.Context, id string, req RefundRequest) (*Accepted, error) {
	if req.Amount < 0 {
		return nil, fmt.Errorf("checkout: refund amount %d is negative", req.Amount)
	}
	key := req.IdempotencyKey
	if key == "" {
		key = IdempotencyKey("refund", id, strconv.FormatInt(req.Amount, 10), req.Reference)
	}
	var a Accepted
	if err := c.do(ctx, http.MethodPost, "/payments/"+url.PathEscape(id)+"/refunds", req, key, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// do runs one API call with rate limiting, per-attempt timeouts and bounded retries.
func (c *Client) do(ctx context.Context, method, path string, in any, idemKey string, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("checkout: encode %s %s: %w", method, path, err)
		}
	}
	start := c.cfg.Now()
	for attempt := 0; ; attempt++ {
		if err := c.wait(ctx); err != nil {
			return fmt.Errorf("checkout: %s %s: %w", method, path, err)
		}
		err := c.once(ctx, method, path, body, idemKey, out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("checkout: %s %s: %w", method, path, ctx.Err())
		}
		var apiErr *APIError
		isAPI := errors.As(err, &apiErr)
		if isAPI && !apiErr.Temporary() {
			return err
		}
		if attempt >= c.cfg.MaxRetries {
			return fmt.Errorf("checkout: gave up after %d attempts: %w", attempt+1, err)
		}
		wait := c.backoff(attempt)
		if isAPI && apiErr.RetryAfter > wait {
			wait = apiErr.RetryAfter
		}
		if c.cfg.Now().Add(wait).Sub(start) > c.cfg.MaxElapsed {
			return fmt.Errorf("checkout: gave up after %d attempts (%s budget): %w", attempt+1, c.cfg.MaxElapsed, err)
		}
		if err := c.cfg.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("checkout: %s %s: %w", method, path, err)
		}
	}
}

// backoff is MinBackoff·2^attempt capped at MaxBackoff, with "equal jitter": half fixed, half random.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 0; i < attempt && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.MaxBackoff)
	return d/2 + time.Duration(c.cfg.Jitter()*float64(d/2))
}

// wait takes a token from the shared limiter, sleeping on the injected clock when there is none.
func (c *Client) wait(ctx context.Context) error {
	now := c.cfg.Now()
	r := c.limiter.ReserveN(now, 1)
	if !r.OK() {
		return errors.New("rate limiter refuses any request")
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if err := c.cfg.Sleep(ctx, d); err != nil {
		r.CancelAt(c.cfg.Now())
		return err
	}
	return nil
}

func (c *Client) once(ctx context.Context, method, path string, body []byte, idemKey string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return fmt.Errorf("checkout: build %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set(IdempotencyHeader, idemKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error repeats the URL, never the headers, so the key stays out of the message.
		return fmt.Errorf("checkout: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("checkout: read %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &APIError{
			Method:       method,
			Path:         path,
			StatusCode:   resp.StatusCode,
			CkoRequestID: resp.Header.Get(RequestIDHeader),
			RetryAfter:   parseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now()),
		}
		// Error bodies are optional (401 and 404 are often empty); a body that is not the
		// documented shape is ignored, the status says enough.
		var body struct {
			RequestID  string   `json:"request_id"`
			ErrorType  string   `json:"error_type"`
			ErrorCodes []string `json:"error_codes"`
		}
		if json.Unmarshal(data, &body) == nil {
			apiErr.RequestID, apiErr.ErrorType, apiErr.ErrorCodes = body.RequestID, body.ErrorType, body.ErrorCodes
		}
		return apiErr
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("checkout: decode %s %s: %w", method, path, err)
	}
	return nil
}

// parseRetryAfter reads delay-seconds or an HTTP date; zero when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
