package desk

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/store"
)

// Every action is a POST carrying the page's token from the page's own origin. Resolve, replay,
// discard and the bulk actions are asked twice: the first POST (without confirm=yes) answers a
// page saying what the action will do, whose form posts the same fields again with confirm=yes.
// No JavaScript involved, so a test or a script sees the same steps as a person.

// formOK checks a POST's token and origin; it answers 403 itself when they are wrong.
func (d *Desk) formOK(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return false
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(d.csrf)) || !sameOrigin(r) {
		d.fail(w, http.StatusForbidden, errors.New("the form's token is missing or stale, or it came from another site: reload the page"))
		return false
	}
	return true
}

// Confirm is what a confirmation page shows: what the action does, and the form that does it.
type Confirm struct {
	Question string
	// Points say what will happen, one consequence a line.
	Points []string
	Action string
	Button string
	Cancel string
	// Fields are the form's fields, posted again with confirm=yes.
	Fields []Field
}

// confirmed reports whether the POST is the confirmed one; when not, it answers the page
// asking for the confirmation.
func (d *Desk) confirmed(w http.ResponseWriter, r *http.Request, c Confirm) bool {
	if r.PostForm.Get("confirm") == "yes" {
		return true
	}
	for k, vs := range r.PostForm {
		if k == "csrf" || k == "confirm" {
			continue
		}
		for _, v := range vs {
			c.Fields = append(c.Fields, Field{Label: k, Value: v})
		}
	}
	slices.SortStableFunc(c.Fields, func(a, b Field) int { return strings.Compare(a.Label, b.Label) })
	c.Action = r.URL.Path
	c.Cancel = localPath(c.Cancel)
	d.render(w, "confirm.html", http.StatusOK, map[string]any{"Title": "confirm: " + c.Button, "C": c})
	return false
}

// record logs what an operator did; the audit trail itself is kept by the fact that did it.
func (d *Desk) record(r *http.Request, action, subject, note, result string) {
	d.cfg.Log.Info("operator action", zap.String("who", who(r)), zap.String("action", action), zap.String("subject", subject),
		zap.String("note", note), zap.String("result", result))
}

// checkNow asks Checkout.com about one payment now, as `reconciler reconcile` does for a window,
// and says in words what it learned. It changes nothing Checkout.com does not already say, so it
// is not asked twice.
func (d *Desk) checkNow(w http.ResponseWriter, r *http.Request) {
	if !d.formOK(w, r) {
		return
	}
	if d.cfg.CheckNow == nil {
		d.fail(w, http.StatusNotFound, errors.New("checks need KNETRECON_CHECKOUT_SECRET_KEY"))
		return
	}
	id := r.PathValue("id")
	note := strings.TrimSpace(r.PostForm.Get("note"))
	outcome, err := d.cfg.CheckNow(r.Context(), id, who(r), note)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.fail(w, http.StatusNotFound, err)
			return
		}
		if errors.Is(err, reconcile.ErrRefused) {
			d.fail(w, http.StatusConflict, err)
			return
		}
		d.record(r, "check", "payment:"+id, note, "failed: "+err.Error())
		d.fail(w, http.StatusBadGateway, err)
		return
	}
	d.record(r, "check", "payment:"+id, note, outcome)
	http.Redirect(w, r, "/payments/"+url.PathEscape(id)+"?flash="+url.QueryEscape(d.learned(r.Context(), id, outcome)), http.StatusSeeOther)
}

// learned says what a check of payment id taught, read back from the ledger: what Checkout.com
// says, whether the ledger agrees or learned something, the discrepancies it opened, and for a
// payment still open what the sweep does next.
func (d *Desk) learned(ctx context.Context, id, outcome string) string {
	p, err := d.cfg.Ledger.Payment(ctx, id)
	if err != nil || len(p.Checks) == 0 {
		return "checked with Checkout.com: " + outcome
	}
	last := p.Checks[0]
	said := last.ProviderStatus
	var s string
	switch {
	case said == "":
		s = "Checkout.com did not say (" + outcome + ")"
	case strings.HasPrefix(outcome, reconcile.CheckRecovered):
		s = fmt.Sprintf("Checkout.com says %s: the ledger learned what no webhook had brought (%s) and is now %s", said, outcome, p.Status)
	case string(p.Status) == said && !p.Final:
		s = fmt.Sprintf("still %s at Checkout.com", said)
	case string(p.Status) == said:
		s = fmt.Sprintf("Checkout.com says %s, as the ledger does; nothing to learn", said)
	default:
		s = fmt.Sprintf("Checkout.com says %s; the ledger says %s", said, p.Status)
	}
	var res struct {
		Discrepancies []string `json:"discrepancies"`
	}
	if json.Unmarshal([]byte(last.Details), &res) == nil && len(res.Discrepancies) > 0 {
		s += "; opened or reopened: " + strings.Join(res.Discrepancies, ", ")
	}
	if !p.Final {
		stuck := slices.ContainsFunc(p.Discrepancies, func(x store.Discrepancy) bool { return x.Kind == payment.KindStuck && x.ResolvedAt == nil })
		if next, err := d.nextStep(ctx, &p.Payment, stuck, d.cfg.Now()); err == nil {
			s += "; next, the sweep " + next
		}
	}
	return s
}

// resolve closes a discrepancy with the operator's note, once confirmed, like
// `reconciler resolve <id> --note`.
func (d *Desk) resolve(w http.ResponseWriter, r *http.Request) {
	if !d.formOK(w, r) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		d.fail(w, http.StatusBadRequest, fmt.Errorf("discrepancy id %q: want a number", r.PathValue("id")))
		return
	}
	note := strings.TrimSpace(r.PostForm.Get("note"))
	if note == "" {
		d.fail(w, http.StatusBadRequest, errors.New("a note is required: say what was done"))
		return
	}
	back := localPath(r.PostForm.Get("back"))
	found, err := d.cfg.Ledger.DeskDiscrepancies(r.Context(), store.DeskDiscrepancyFilter{ID: id, State: "all", Limit: 1})
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	if len(found) == 0 || found[0].ResolvedAt != nil {
		d.fail(w, http.StatusConflict, fmt.Errorf("discrepancy %d: not found or already resolved", id))
		return
	}
	x := found[0]
	c := Confirm{Question: fmt.Sprintf("Resolve discrepancy #%d (%s) of payment %s?", id, x.Kind, x.PaymentID),
		Button: "Yes, resolve #" + strconv.FormatInt(id, 10), Cancel: back,
		Points: []string{"It is closed with your note, kept in the audit trail as yours (" + who(r) + "): “" + note + "”."}}
	if x.Currency != "" {
		amount, _ := payment.Format(x.Amount, x.Currency)
		c.Points = append(c.Points, fmt.Sprintf("The payment: %s %s, reference %s, %s.", amount, x.Currency, x.Reference, x.Status))
	}
	if why := reopens(x); why != "" {
		c.Points = append(c.Points, why)
	}
	if !d.confirmed(w, r, c) {
		return
	}
	err = d.cfg.Resolve(r.Context(), id, who(r), note)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, reconcile.ErrRefused) {
		d.fail(w, http.StatusConflict, fmt.Errorf("discrepancy %d: not found or already resolved", id))
		return
	}
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	d.record(r, "resolve", fmt.Sprintf("discrepancy:%d", id), note, "resolved")
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// resolveBulk resolves the discrepancies picked on the list with one note, once confirmed.
func (d *Desk) resolveBulk(w http.ResponseWriter, r *http.Request) {
	if !d.formOK(w, r) {
		return
	}
	note, back := strings.TrimSpace(r.PostForm.Get("note")), localPath(r.PostForm.Get("back"))
	if note == "" {
		d.fail(w, http.StatusBadRequest, errors.New("a note is required: say what was done"))
		return
	}
	var picked []store.DeskDiscrepancy
	for _, v := range r.PostForm["id"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			d.fail(w, http.StatusBadRequest, fmt.Errorf("discrepancy id %q: want a number", v))
			return
		}
		found, err := d.cfg.Ledger.DeskDiscrepancies(r.Context(), store.DeskDiscrepancyFilter{ID: id, State: "all", Limit: 1})
		if err != nil {
			d.fail(w, http.StatusInternalServerError, err)
			return
		}
		if len(found) == 1 && found[0].ResolvedAt == nil {
			picked = append(picked, found[0])
		}
	}
	if len(picked) == 0 {
		d.fail(w, http.StatusBadRequest, errors.New("no open discrepancy picked"))
		return
	}
	c := Confirm{Question: fmt.Sprintf("Resolve %d discrepancies?", len(picked)), Button: fmt.Sprintf("Yes, resolve %d", len(picked)), Cancel: back}
	for _, x := range picked {
		line := fmt.Sprintf("#%d %s of payment %s", x.ID, x.Kind, x.PaymentID)
		if x.Currency != "" {
			amount, _ := payment.Format(x.Amount, x.Currency)
			line += fmt.Sprintf(" (%s %s, reference %s, %s)", amount, x.Currency, x.Reference, x.Status)
		}
		if why := reopens(x); why != "" {
			line += ". " + why
		}
		c.Points = append(c.Points, line)
	}
	c.Points = append(c.Points, "Each is closed with your note, kept in the audit trail as yours ("+who(r)+"): “"+note+"”.")
	if !d.confirmed(w, r, c) {
		return
	}
	var done []string
	for _, x := range picked {
		if err := d.cfg.Resolve(r.Context(), x.ID, who(r), note); err != nil {
			done = append(done, fmt.Sprintf("#%d not resolved: %v", x.ID, err))
			continue
		}
		d.record(r, "resolve", fmt.Sprintf("discrepancy:%d", x.ID), note, "resolved")
		done = append(done, fmt.Sprintf("#%d resolved", x.ID))
	}
	u, _ := url.Parse(back)
	q := u.Query()
	q.Set("flash", strings.Join(done, "; "))
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// reopens says when a resolved discrepancy comes back (issue 14's lifecycle): what a check
// finds again and again is reopened while it is still true.
func reopens(x store.DeskDiscrepancy) string {
	switch {
	case x.Kind == payment.KindStuck && !x.Status.Final():
		return "Still true: the payment is still " + string(x.Status) + ", so the next sweep marks it stuck again (it reopens) until the payment is final."
	case x.Kind == payment.KindUnknownAtProvider:
		return "If Checkout.com still answers 404 for it at the next check, it reopens."
	case x.Subject == store.SubjectProvider:
		return "Checkout.com and the ledger differed at the last check: if the next check still finds the difference, it reopens."
	}
	return ""
}

// deadLetters lists the dead letters pending (all with ?all=1), with replay and discard forms.
func (d *Desk) deadLetters(w http.ResponseWriter, r *http.Request) {
	all := r.URL.Query().Get("all") != ""
	dls, err := d.cfg.Ledger.DeadLetters(r.Context(), !all, 200)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	d.render(w, "deadletters.html", http.StatusOK, map[string]any{"Title": "dead letters", "List": dls, "All": all,
		"CanReplay": d.cfg.Replay != nil, "Flash": r.URL.Query().Get("flash")})
}

// deadLetterID reads the {id} of a dead letter's path.
func deadLetterID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("dead letter id %q: want a number", r.PathValue("id"))
	}
	return id, nil
}

// deadLetter shows one dead letter: its headers, why it was set aside, and its body
// pretty-printed when it is JSON.
func (d *Desk) deadLetter(w http.ResponseWriter, r *http.Request) {
	id, err := deadLetterID(r)
	if err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	dl, err := d.cfg.Ledger.DeadLetter(r.Context(), id)
	if err != nil {
		d.failRead(w, err)
		return
	}
	body, isJSON := string(dl.Body), false
	var b bytes.Buffer
	if json.Indent(&b, dl.Body, "", "  ") == nil {
		body, isJSON = b.String(), true
	}
	var headers []Field
	for _, k := range slices.Sorted(maps.Keys(dl.Headers)) {
		headers = append(headers, Field{Label: k, Value: dl.Headers[k]})
	}
	d.render(w, "deadletter.html", http.StatusOK, map[string]any{"Title": fmt.Sprintf("dead letter %d", id), "D": dl, "Body": body,
		"JSON": isJSON, "Headers": headers, "CanReplay": d.cfg.Replay != nil})
}

// deadLetterBody serves a dead letter's exact body as inert text.
func (d *Desk) deadLetterBody(w http.ResponseWriter, r *http.Request) {
	id, err := deadLetterID(r)
	if err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	dl, err := d.cfg.Ledger.DeadLetter(r.Context(), id)
	if err != nil {
		d.failRead(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(dl.Body)
}

// deadLetterAction replays or discards a dead letter (discard with a note, kept with who), once
// confirmed.
func (d *Desk) deadLetterAction(w http.ResponseWriter, r *http.Request) {
	if !d.formOK(w, r) {
		return
	}
	id, err := deadLetterID(r)
	if err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	action, note := r.PathValue("action"), strings.TrimSpace(r.PostForm.Get("note"))
	if err := d.actionAllowed(action, note); err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	dl, err := d.cfg.Ledger.DeadLetter(r.Context(), id)
	if err != nil {
		d.failRead(w, err)
		return
	}
	if !dl.Pending() {
		d.fail(w, http.StatusConflict, fmt.Errorf("dead letter %d: %w", id, store.ErrAlreadyHandled))
		return
	}
	if !d.confirmed(w, r, d.deadLetterConfirm(action, note, r, []store.DeadLetter{*dl})) {
		return
	}
	flash, status := d.deadLetterDo(r, action, id, note)
	if status != 0 {
		d.fail(w, status, errors.New(flash))
		return
	}
	http.Redirect(w, r, "/dead-letters?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

// deadLetterBulk replays or discards the dead letters ticked on the list, once confirmed.
func (d *Desk) deadLetterBulk(w http.ResponseWriter, r *http.Request) {
	if !d.formOK(w, r) {
		return
	}
	action, note := r.PostForm.Get("action"), strings.TrimSpace(r.PostForm.Get("note"))
	if err := d.actionAllowed(action, note); err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	var dls []store.DeadLetter
	for _, v := range r.PostForm["id"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			d.fail(w, http.StatusBadRequest, fmt.Errorf("dead letter id %q: want a number", v))
			return
		}
		dl, err := d.cfg.Ledger.DeadLetter(r.Context(), id)
		if err != nil {
			d.failRead(w, err)
			return
		}
		if dl.Pending() {
			dls = append(dls, *dl)
		}
	}
	if len(dls) == 0 {
		d.fail(w, http.StatusBadRequest, errors.New("no pending dead letter ticked"))
		return
	}
	if !d.confirmed(w, r, d.deadLetterConfirm(action, note, r, dls)) {
		return
	}
	var flashes []string
	for _, dl := range dls {
		flash, _ := d.deadLetterDo(r, action, dl.ID, note)
		flashes = append(flashes, flash)
	}
	http.Redirect(w, r, "/dead-letters?flash="+url.QueryEscape(strings.Join(flashes, "; ")), http.StatusSeeOther)
}

// actionAllowed checks a dead-letter action and its note.
func (d *Desk) actionAllowed(action, note string) error {
	switch {
	case action == "replay" && d.cfg.Replay == nil:
		return errors.New("replay is not available here")
	case action == "discard" && note == "":
		return errors.New("a note is required: say why it is set aside")
	case action != "replay" && action != "discard":
		return fmt.Errorf("action %q: want replay or discard", action)
	}
	return nil
}

// deadLetterConfirm says what replaying or discarding dls will do.
func (d *Desk) deadLetterConfirm(action, note string, r *http.Request, dls []store.DeadLetter) Confirm {
	n := len(dls)
	c := Confirm{Cancel: "/dead-letters"}
	what := fmt.Sprintf("dead letter %d", dls[0].ID)
	if n > 1 {
		what = fmt.Sprintf("%d dead letters", n)
	}
	for _, dl := range dls {
		c.Points = append(c.Points, fmt.Sprintf("#%d: %s, received %s, set aside because: %s", dl.ID, dl.Subject, stamp(dl.CreatedAt, d.cfg.Location), dl.Reason))
	}
	if action == "replay" {
		c.Question, c.Button = "Replay "+what+"?", "Yes, replay "+what
		c.Points = append(c.Points, "Each is verified again against the webhook keys and applied to every ledger as if it had just arrived; one that still fails stays here with the new reason.")
	} else {
		c.Question, c.Button = "Discard "+what+"?", "Yes, discard "+what
		c.Points = append(c.Points, "Each is set aside for good: never applied, kept in the list of all dead letters with your note.")
	}
	c.Points = append(c.Points, "Recorded in the audit trail as "+who(r)+": “"+note+"”.")
	return c
}

// deadLetterDo replays or discards one dead letter; status is non-zero when it was refused.
func (d *Desk) deadLetterDo(r *http.Request, action string, id int64, note string) (flash string, status int) {
	if action == "replay" {
		res, err := d.cfg.Replay(r.Context(), id, who(r), note)
		if err != nil {
			d.record(r, "replay", fmt.Sprintf("dead_letter:%d", id), note, "failed: "+err.Error())
			return fmt.Sprintf("dead letter %d not applied: %v", id, err), 0
		}
		d.record(r, "replay", fmt.Sprintf("dead_letter:%d", id), note, res)
		return fmt.Sprintf("dead letter %d: %s", id, res), 0
	}
	if err := d.cfg.Discard(r.Context(), id, who(r), note); err != nil {
		return fmt.Sprintf("dead letter %d not discarded: %v", id, err), http.StatusConflict
	}
	d.record(r, "discard", fmt.Sprintf("dead_letter:%d", id), note, "discarded")
	return fmt.Sprintf("dead letter %d discarded", id), 0
}
