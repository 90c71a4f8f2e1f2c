package desk

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"knetrecon/internal/payment"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
)

// search finds payments by any of their ids or references, ignoring case, prefixes allowed
// (store.Ledger.Search): one match opens its page, several are listed with status, amount and
// date.
func (d *Desk) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	hits, err := d.cfg.Ledger.Search(r.Context(), q, 50)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	if len(hits) == 1 {
		http.Redirect(w, r, "/payments/"+url.PathEscape(hits[0].ID), http.StatusSeeOther)
		return
	}
	d.render(w, "search.html", http.StatusOK, map[string]any{"Title": "search " + q, "Q": q, "Hits": hits})
}

// payment is a payment's whole story: summary, one timeline (events and checks, oldest first),
// postings, discrepancies with their details as fields, operator actions.
func (d *Desk) payment(w http.ResponseWriter, r *http.Request) {
	p, err := d.cfg.Ledger.Payment(r.Context(), r.PathValue("id"))
	if err != nil {
		d.failRead(w, err)
		return
	}
	actions, err := d.cfg.Ledger.Actions(r.Context(), "payment:"+p.ID, 50)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	d.render(w, "payment.html", http.StatusOK, map[string]any{"Title": p.ID, "P": p, "Timeline": timeline(p), "CanCheck": d.cfg.CheckNow != nil,
		"Actions": actions, "Flash": r.URL.Query().Get("flash"), "Back": "/payments/" + url.PathEscape(p.ID)})
}

// discrepancies lists discrepancies by kind, state (open, resolved, all) and day detected (in
// the report time zone), newest first.
func (d *Desk) discrepancies(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.DeskDiscrepancyFilter{Kind: payment.Kind(strings.TrimSpace(q.Get("kind"))), State: q.Get("state"), Limit: 100}
	if day := q.Get("day"); day != "" {
		from, to, err := report.Day(day, d.cfg.Location)
		if err != nil {
			d.fail(w, http.StatusBadRequest, err)
			return
		}
		f.From, f.To = from, to
	}
	list, err := d.cfg.Ledger.DeskDiscrepancies(r.Context(), f)
	if err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	state := f.State
	if state == "" {
		state = "open"
	}
	d.render(w, "discrepancies.html", http.StatusOK, map[string]any{"Title": "discrepancies", "List": list, "Kind": q.Get("kind"),
		"State": state, "Day": q.Get("day"), "Kinds": kinds, "States": []string{"open", "resolved", "all"}, "Back": "/discrepancies?" + r.URL.RawQuery,
		"Heading": fmt.Sprintf("Discrepancies: %s", state), "Flash": q.Get("flash")})
}
