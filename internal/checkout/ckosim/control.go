package ckosim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// controlRoutes mounts the /_sim/ control API: what a test or a person does without a browser.
// It takes no API key. Payment operations answer the payment as GET /payments/{id} shows it.
func (s *Sim) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/payments", s.ctlList)
	mux.HandleFunc("POST /_sim/payments", s.ctlCreate)
	mux.HandleFunc("GET /_sim/payments/{id}", s.ctlOp(func(string, ctlBody) error { return nil }))
	mux.HandleFunc("POST /_sim/payments/{id}/land", s.ctlOp(func(id string, _ ctlBody) error { return s.Land(id) }))
	mux.HandleFunc("POST /_sim/payments/{id}/complete", s.ctlOp(func(id string, b ctlBody) error {
		card := TestCard
		if b.CardNumber != "" {
			card = Card{Number: b.CardNumber, ExpiryMonth: b.ExpiryMonth, ExpiryYear: b.ExpiryYear, PIN: b.PIN}
		}
		_, err := s.Complete(id, card)
		return err
	}))
	mux.HandleFunc("POST /_sim/payments/{id}/decline", s.ctlOp(func(id string, _ ctlBody) error { _, err := s.Decline(id); return err }))
	mux.HandleFunc("POST /_sim/payments/{id}/cancel", s.ctlOp(func(id string, _ ctlBody) error { _, err := s.Cancel(id); return err }))
	mux.HandleFunc("POST /_sim/payments/{id}/expire", s.ctlOp(func(id string, _ ctlBody) error { _, err := s.Expire(id); return err }))
	mux.HandleFunc("POST /_sim/payments/{id}/void", s.ctlOp(func(id string, b ctlBody) error { _, err := s.Void(id, b.Reference); return err }))
	mux.HandleFunc("POST /_sim/payments/{id}/refund", s.ctlOp(func(id string, b ctlBody) error {
		_, err := s.Refund(id, b.Amount, b.Reference)
		return err
	}))
	mux.HandleFunc("POST /_sim/advance", s.ctlAdvance)
	mux.HandleFunc("GET /_sim/now", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]time.Time{"now": s.Now()})
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Faults()) })
	mux.HandleFunc("PUT /_sim/faults", s.ctlFaults)
	mux.HandleFunc("POST /_sim/webhooks/drop-next", s.ctlDropNext)
	mux.HandleFunc("GET /_sim/webhooks", s.ctlWebhooks)
	mux.HandleFunc("POST /_sim/wait-idle", s.ctlWaitIdle)
	mux.HandleFunc("GET /_sim/settlement", s.ctlSettlement)
	mux.HandleFunc("GET /_sim/account", s.ctlAccount)
}

// ctlBody is the optional JSON body of a control operation.
type ctlBody struct {
	CardNumber  string `json:"card_number"`
	ExpiryMonth string `json:"expiry_month"`
	ExpiryYear  string `json:"expiry_year"`
	PIN         string `json:"pin"`
	Amount      int64  `json:"amount"`
	Reference   string `json:"reference"`
	N           int    `json:"n"`
	By          string `json:"by"`
}

func readCtl(r *http.Request) (ctlBody, error) {
	var b ctlBody
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || strings.TrimSpace(string(data)) == "" {
		return b, err
	}
	return b, json.Unmarshal(data, &b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ctlError(w http.ResponseWriter, err error) {
	status := http.StatusConflict
	var verr *ValidationError
	switch {
	case errors.Is(err, ErrUnknownPayment):
		status = http.StatusNotFound
	case errors.As(err, &verr), errors.Is(err, ErrExceedsBalance):
		status = http.StatusUnprocessableEntity
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func (s *Sim) ctlOp(op func(id string, b ctlBody) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := readCtl(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
			return
		}
		id := r.PathValue("id")
		if err := op(id, b); err != nil {
			ctlError(w, err)
			return
		}
		s.mu.Lock()
		p, ok := s.payments[id]
		var wp wirePayment
		if ok {
			wp = s.wirePayment(p)
		}
		s.mu.Unlock()
		if !ok {
			ctlError(w, ErrUnknownPayment)
			return
		}
		writeJSON(w, http.StatusOK, wp)
	}
}

type ctlSummary struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Amount      int64  `json:"amount"`
	Reference   string `json:"reference,omitempty"`
	RedirectURL string `json:"redirect_url,omitempty"`
}

func (s *Sim) ctlList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := make([]ctlSummary, 0, len(s.order))
	for _, p := range s.order {
		sum := ctlSummary{ID: p.ID, Status: p.Status, Amount: p.Amount, Reference: p.Reference}
		if p.Status == "Pending" {
			sum.RedirectURL = p.redirectURL()
		}
		out = append(out, sum)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) ctlCreate(w http.ResponseWriter, r *http.Request) {
	resp := s.handleCreate(r, "ctl")
	writeResponse(w, resp)
}

func (s *Sim) ctlAdvance(w http.ResponseWriter, r *http.Request) {
	b, err := readCtl(r)
	if by := r.URL.Query().Get("by"); by != "" {
		b.By = by
	}
	d, perr := time.ParseDuration(b.By)
	if err != nil || perr != nil || d < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"by": "7m"} or ?by=7m`})
		return
	}
	if err := s.Advance(d); err != nil {
		ctlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]time.Time{"now": s.Now()})
}

func (s *Sim) ctlFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faults: " + err.Error()})
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

func (s *Sim) ctlDropNext(w http.ResponseWriter, r *http.Request) {
	b, err := readCtl(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return
	}
	if b.N <= 0 {
		b.N = 1
	}
	s.DropNext(b.N)
	writeJSON(w, http.StatusOK, map[string]int{"dropping_next": b.N})
}

func (s *Sim) ctlWebhooks(w http.ResponseWriter, r *http.Request) {
	recs := s.Webhooks()
	if id := r.URL.Query().Get("payment_id"); id != "" {
		kept := recs[:0]
		for _, rec := range recs {
			if rec.PaymentID == id {
				kept = append(kept, rec)
			}
		}
		recs = kept
	}
	writeJSON(w, http.StatusOK, recs)
}

func (s *Sim) ctlWaitIdle(w http.ResponseWriter, r *http.Request) {
	timeout := 10 * time.Second
	if v := r.URL.Query().Get("timeout"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": "not idle: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"idle": true})
}
