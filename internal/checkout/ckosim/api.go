package ckosim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"knetrecon/internal/checkout"
)

// Handler serves the payments API (/payments…), the KNET page (/knet/…) and the control API
// (/_sim/…). The API answers like Checkout.com; the control API is the simulator's own.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /payments", s.api(s.handleCreate))
	mux.Handle("GET /payments/{id}", s.api(s.handleGet))
	mux.Handle("GET /payments/{id}/actions", s.api(s.handleActions))
	mux.Handle("POST /payments/{id}/voids", s.api(s.handleVoid))
	mux.Handle("POST /payments/{id}/refunds", s.api(s.handleRefund))
	mux.Handle("GET /workflows/events/{id}", s.api(s.handleEvent))
	mux.Handle("GET /workflows/events/subject/{id}", s.api(s.handleSubjectEvents))
	mux.HandleFunc("GET /knet/{token}/pay", s.handleKNETPage)
	mux.HandleFunc("POST /knet/{token}/pay", s.handleKNETSubmit)
	s.controlRoutes(mux)
	return mux
}

// response is an API answer, kept whole so that an idempotency key can replay it.
type response struct {
	status int
	body   []byte
}

func jsonResponse(status int, v any) response {
	if v == nil {
		return response{status: status}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return response{status: http.StatusInternalServerError}
	}
	return response{status: status, body: b}
}

type errorBody struct {
	RequestID  string   `json:"request_id"`
	ErrorType  string   `json:"error_type"`
	ErrorCodes []string `json:"error_codes"`
}

// api wraps an API handler with what every Checkout.com answer has: the Cko-Request-Id, the key
// check, the injected faults and latency, and idempotency-key replay for POSTs.
func (s *Sim) api(h func(r *http.Request, reqID string) response) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		reqID := s.newID("req_")
		if len(s.requests) >= maxRequestLog {
			s.requests = append(s.requests[:0], s.requests[len(s.requests)/2:]...)
		}
		s.requests = append(s.requests, s.clock.Now())
		f := s.faults
		roll429, roll5xx, pick := s.apiRng.Float64(), s.apiRng.Float64(), s.apiRng.IntN(3)
		s.mu.Unlock()

		w.Header().Set(checkout.RequestIDHeader, reqID)
		if f.Latency > 0 {
			t := time.NewTimer(time.Duration(f.Latency))
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if !s.authorized(r.Header.Get("Authorization")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case roll429 < f.API429Rate:
			ra := time.Duration(f.RetryAfter)
			if ra <= 0 {
				ra = time.Second
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.Seconds()))))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		case roll5xx < f.API5xxRate:
			w.WriteHeader([]int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[pick])
			return
		}

		key := r.Header.Get(checkout.IdempotencyHeader)
		route := r.Method + " " + r.URL.Path
		if r.Method != http.MethodPost || key == "" {
			writeResponse(w, h(r, reqID))
			return
		}
		s.mu.Lock()
		e, seen := s.idem[key]
		if seen && !e.pending && s.clock.Now().Sub(e.at) > 24*time.Hour {
			seen = false // Checkout.com keeps keys for 24 hours
		}
		if !seen {
			if len(s.idem) >= 10_000 {
				s.pruneIdemLocked()
			}
			s.idem[key] = idemEntry{route: route, pending: true, at: s.clock.Now()}
		}
		s.mu.Unlock()
		switch {
		case seen && e.pending:
			// A concurrent duplicate, answered as Checkout.com does.
			w.Header().Set("Retry-After", "1")
			writeResponse(w, jsonResponse(http.StatusTooManyRequests, errorBody{reqID, "request_invalid", []string{"idempotency_key_in_use"}}))
			return
		case seen && e.route != route:
			writeResponse(w, jsonResponse(http.StatusConflict, errorBody{reqID, "request_invalid", []string{"idempotency_key_reused"}}))
			return
		case seen:
			writeResponse(w, response{status: e.status, body: e.body})
			return
		}
		resp := h(r, reqID)
		s.mu.Lock()
		if resp.status < 500 {
			s.idem[key] = idemEntry{route: route, status: resp.status, body: resp.body, at: s.clock.Now()}
		} else {
			delete(s.idem, key)
		}
		s.mu.Unlock()
		writeResponse(w, resp)
	})
}

// pruneIdemLocked forgets answers older than Checkout.com's 24 hours.
func (s *Sim) pruneIdemLocked() {
	now := s.clock.Now()
	for k, e := range s.idem {
		if !e.pending && now.Sub(e.at) > 24*time.Hour {
			delete(s.idem, k)
		}
	}
}

func writeResponse(w http.ResponseWriter, resp response) {
	if resp.body != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

func (s *Sim) authorized(header string) bool {
	key := s.cfg.SecretKey
	if key == "" {
		return true
	}
	bearer := checkout.AuthorizationMatches(header, "Bearer "+key)
	bare := checkout.AuthorizationMatches(header, key)
	switch s.cfg.Auth {
	case AuthBare:
		return bare
	case AuthEither:
		return bare || bearer
	default:
		return bearer
	}
}

func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// paymentBody is POST /payments as sent: the amount stays text so "10.5" or "1e3" are refused.
type paymentBody struct {
	Amount     json.Number        `json:"amount"`
	Currency   string             `json:"currency"`
	Reference  string             `json:"reference"`
	Source     *checkout.Source   `json:"source"`
	Customer   *checkout.Customer `json:"customer"`
	Metadata   json.RawMessage    `json:"metadata"`
	SuccessURL string             `json:"success_url"`
	FailureURL string             `json:"failure_url"`
}

func (s *Sim) handleCreate(r *http.Request, reqID string) response {
	var in paymentBody
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return jsonResponse(http.StatusUnprocessableEntity, errorBody{reqID, "request_invalid", []string{"request_body_malformed"}})
	}
	req := PaymentRequest{Currency: in.Currency, Reference: in.Reference, Metadata: in.Metadata, SuccessURL: in.SuccessURL, FailureURL: in.FailureURL}
	if in.Source != nil {
		req.Source = *in.Source
	}
	if in.Customer != nil {
		req.Customer = *in.Customer
	}
	amount := in.Amount.String()
	if n, err := strconv.ParseInt(amount, 10, 64); err == nil {
		req.Amount = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if codes := validate(amount, req); len(codes) > 0 {
		return jsonResponse(http.StatusUnprocessableEntity, errorBody{reqID, "request_invalid", codes})
	}
	p := s.createLocked(req, s.base(requestBase(r)))
	return jsonResponse(http.StatusAccepted, map[string]any{
		"id":        p.ID,
		"status":    p.Status,
		"reference": p.Reference,
		"customer":  map[string]string{"id": p.Customer.ID},
		"_links": map[string]checkout.Link{
			"self":     {Href: p.Base + "/payments/" + p.ID},
			"redirect": {Href: p.redirectURL()},
		},
	})
}

func (s *Sim) handleGet(r *http.Request, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[r.PathValue("id")]
	if !ok {
		return response{status: http.StatusNotFound}
	}
	return jsonResponse(http.StatusOK, s.wirePayment(p))
}

func (s *Sim) handleActions(r *http.Request, _ string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[r.PathValue("id")]
	if !ok {
		return response{status: http.StatusNotFound}
	}
	return jsonResponse(http.StatusOK, wireActions(p))
}

type actionBody struct {
	Amount    *json.Number `json:"amount"`
	Reference string       `json:"reference"`
}

func readActionBody(r *http.Request) (actionBody, error) {
	var in actionBody
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return in, err
	}
	return in, json.Unmarshal(data, &in)
}

func (s *Sim) accepted(p *payment, a *action) response {
	return jsonResponse(http.StatusAccepted, map[string]any{
		"action_id": a.ID,
		"reference": a.Reference,
		"_links":    map[string]checkout.Link{"payment": {Href: p.Base + "/payments/" + p.ID}},
	})
}

func (s *Sim) handleVoid(r *http.Request, reqID string) response {
	in, err := readActionBody(r)
	if err != nil {
		return jsonResponse(http.StatusUnprocessableEntity, errorBody{reqID, "request_invalid", []string{"request_body_malformed"}})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[r.PathValue("id")]
	if !ok {
		return response{status: http.StatusNotFound}
	}
	a, err := s.voidLocked(p, in.Reference)
	if err != nil {
		return jsonResponse(http.StatusForbidden, errorBody{reqID, "action_not_allowed", []string{"void_not_allowed"}})
	}
	return s.accepted(p, a)
}

func (s *Sim) handleRefund(r *http.Request, reqID string) response {
	in, err := readActionBody(r)
	if err != nil {
		return jsonResponse(http.StatusUnprocessableEntity, errorBody{reqID, "request_invalid", []string{"request_body_malformed"}})
	}
	var amount int64
	if in.Amount != nil {
		amount, err = strconv.ParseInt(in.Amount.String(), 10, 64)
		if err != nil || amount <= 0 {
			return jsonResponse(http.StatusUnprocessableEntity, errorBody{reqID, "request_invalid", []string{"amount_invalid"}})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[r.PathValue("id")]
	if !ok {
		return response{status: http.StatusNotFound}
	}
	a, err := s.refundLocked(p, amount, in.Reference)
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		return jsonResponse(http.StatusUnprocessableEntity, errorBody{reqID, "request_invalid", verr.Codes})
	case errors.Is(err, ErrExceedsBalance):
		return jsonResponse(http.StatusUnprocessableEntity, errorBody{reqID, "request_invalid", []string{"refund_amount_exceeds_balance"}})
	case err != nil:
		return jsonResponse(http.StatusForbidden, errorBody{reqID, "action_not_allowed", []string{"refund_not_allowed"}})
	}
	return s.accepted(p, a)
}

// handleEvent is GET /workflows/events/{id}: the event exactly as it was (or would have been)
// delivered, lost ones included, which is how a missed webhook is re-fetched.
func (s *Sim) handleEvent(r *http.Request, _ string) response {
	id := r.PathValue("id")
	for _, rec := range s.hooks.records() {
		if rec.EventID == id {
			return response{status: http.StatusOK, body: rec.Body}
		}
	}
	return response{status: http.StatusNotFound}
}

// handleSubjectEvents is GET /workflows/events/subject/{id}: every event of a payment, oldest first.
func (s *Sim) handleSubjectEvents(r *http.Request, _ string) response {
	id := r.PathValue("id")
	s.mu.Lock()
	p, ok := s.payments[id]
	s.mu.Unlock()
	if !ok {
		return response{status: http.StatusNotFound}
	}
	type summary struct {
		ID        string                   `json:"id"`
		Type      string                   `json:"type"`
		CreatedOn string                   `json:"created_on"`
		Links     map[string]checkout.Link `json:"_links"`
	}
	data := []summary{}
	for _, rec := range s.hooks.records() {
		if rec.PaymentID == id {
			data = append(data, summary{ID: rec.EventID, Type: rec.Type, CreatedOn: rec.CreatedOn.UTC().Format(time.RFC3339),
				Links: map[string]checkout.Link{"self": {Href: p.Base + "/workflows/events/" + rec.EventID}}})
		}
	}
	return jsonResponse(http.StatusOK, map[string]any{"data": data})
}

// formatKWD renders fils as KWD with three decimals, without floats.
func formatKWD(fils int64) string {
	return fmt.Sprintf("%d.%03d", fils/1000, fils%1000)
}
