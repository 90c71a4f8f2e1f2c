package ckosim

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"knetrecon/internal/checkout"
)

var knetPage = template.Must(template.New("knet").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>KNET Payment Gateway (simulated)</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto}label{display:block;margin:.6em 0}
input,select{font-size:1em}.note{color:#666;font-size:.9em}</style></head>
<body>
<h1>KNET</h1>
<p class="note">ckosim — a local simulation of the KNET page. Nothing here is real.</p>
{{if .Done}}
<p>Payment <code>{{.ID}}</code>: <strong>{{.Status}}</strong>.</p>
{{else}}
<p>Merchant reference: {{.Reference}}<br>Amount: <strong>{{.Amount}} KWD</strong></p>
<form method="post">
<label>Bank <select name="bank">
<option>Knet Test Card [KNET1]</option><option>Al Ahli Bank of Kuwait [ABK]</option>
<option>Boubyan Bank [BBYN]</option><option>Kuwait Finance House [KFH]</option>
<option>National Bank of Kuwait [NBK]</option></select></label>
<label>Card number <input name="card_number" inputmode="numeric" autocomplete="off" size="19"></label>
<label>Expiry <select name="expiry_month">{{range .Months}}<option>{{.}}</option>{{end}}</select>
<select name="expiry_year">{{range .Years}}<option>{{.}}</option>{{end}}</select></label>
<label>PIN <input name="pin" type="password" inputmode="numeric" size="4" autocomplete="off"></label>
<button name="action" value="submit">Submit</button>
<button name="action" value="cancel">Cancel</button>
</form>
<p class="note">Test card: 8888880000000001, 09/2025, PIN 1234. The page expires {{.Expiry}} after you land on it.</p>
{{end}}
</body></html>
`))

type knetView struct {
	ID, Status, Reference, Amount, Expiry string
	Done                                  bool
	Months, Years                         []string
}

func (s *Sim) view(p *payment) knetView {
	v := knetView{ID: p.ID, Status: p.Status, Reference: p.Reference, Amount: formatKWD(p.Amount),
		Expiry: s.cfg.Expiry.String(), Done: p.Status != checkout.StatusPending}
	v.Months = []string{"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"}
	v.Years = []string{"2024", "2025", "2026", "2027", "2028", "2029", "2030"}
	return v
}

func (s *Sim) handleKNETPage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.byToken[r.PathValue("token")]
	var v knetView
	if ok {
		if p.Status == checkout.StatusPending {
			s.landLocked(p)
		}
		v = s.view(p)
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = knetPage.Execute(w, v)
}

func (s *Sim) handleKNETSubmit(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.byToken[r.PathValue("token")]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var card *Card
	if r.PostForm.Get("action") != "cancel" {
		card = &Card{Bank: r.PostForm.Get("bank"), Number: r.PostForm.Get("card_number"),
			ExpiryMonth: r.PostForm.Get("expiry_month"), ExpiryYear: r.PostForm.Get("expiry_year"), PIN: r.PostForm.Get("pin")}
	}
	status, err := s.finish(p.ID, card)
	if err != nil && !errors.Is(err, ErrNotPending) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	target := p.FailureURL
	if status == checkout.StatusCaptured {
		target = p.SuccessURL
	}
	v := s.view(p)
	s.mu.Unlock()
	if target != "" {
		if u, err := url.Parse(target); err == nil {
			q := u.Query()
			q.Set("cko-payment-id", p.ID)
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = knetPage.Execute(w, v)
}
