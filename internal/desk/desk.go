// Package desk is the operator's web page, served on the reconciler's admin address: the health
// of the road, what is stuck or open, the money of the last 30 days as a chart, a search by
// payment id, merchant reference or KNET id, a payment's whole story, resolving a discrepancy,
// and the daily reports to download. Server-rendered (html/template, embedded: no CDN, works
// offline); its actions go through the same store functions as their CLI twins.
package desk

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"knetrecon/internal/payment"
	"knetrecon/internal/reconcile"
	"knetrecon/internal/report"
	"knetrecon/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

// Check is one line of the home page's health of the road.
type Check struct {
	Name, Detail string
	OK           bool
}

// Config is what the page needs.
type Config struct {
	Ledger *store.Ledger
	// Location is the report time zone (the chart's and the reports' days).
	Location *time.Location
	// ReportDir is where the reconciler writes the daily reports (KNETRECON_REPORT_DIR): a closed
	// day's download is the report written there, as finance received it; empty: always built.
	ReportDir string
	// Log gets a line for each operator action and for an action the audit trail could not keep.
	Log *zap.Logger
	// Now is the clock.
	Now func() time.Time
	// Health reports the road's state (the reconciler fills it: consumer, NATS, ledger, lag…).
	Health func(context.Context) []Check
	// The operators' actions. Each is a fact on the stream that every ledger applies and keeps in
	// its audit trail with who and the note; the page never writes to the ledger itself.
	//
	// Resolve closes a discrepancy (an error wrapping store.ErrNotFound or ErrRefused: nothing to do).
	Resolve func(ctx context.Context, id int64, who, note string) error
	// Discard sets a dead letter aside.
	Discard func(ctx context.Context, id int64, who, note string) error
	// Replay applies a dead letter again (its signature verified again); nil leaves the action out.
	Replay func(ctx context.Context, id int64, who, note string) (string, error)
	// CheckNow asks Checkout.com about a payment now and records what it learns (the sweep's
	// check); nil leaves the action out (no API key configured, or not this reconciler's to do).
	CheckNow func(ctx context.Context, paymentID, who, note string) (string, error)
}

// Operate wires the page's resolve, discard and replay to ops: facts on the stream.
func (c *Config) Operate(ops *reconcile.Operator) {
	c.Resolve = func(ctx context.Context, id int64, who, note string) error {
		_, err := ops.Resolve(ctx, id, who, note)
		return err
	}
	c.Discard = func(ctx context.Context, id int64, who, note string) error {
		_, err := ops.Discard(ctx, id, who, note)
		return err
	}
	c.Replay = func(ctx context.Context, id int64, who, note string) (string, error) {
		res, err := ops.Replay(ctx, id, who, note)
		if err != nil {
			return "", err
		}
		if res.Waiting {
			return fmt.Sprintf("published (stream seq %d), not applied here yet", res.Seq), nil
		}
		if strings.HasPrefix(res.Result, "failed: ") {
			return "", errors.New(strings.TrimPrefix(res.Result, "failed: "))
		}
		return res.Result, nil
	}
}

// Desk serves the page.
type Desk struct {
	cfg  Config
	tmpl *template.Template
	csrf string

	// closed caches the chart's days before today: a posting counts on the day it is posted
	// (store.PostingLines), so a day's net is final once the day is over.
	mu     sync.Mutex
	closed chartCache
}

// chartCache is the net of closed days [from, to) by currency and day, and the postings counted.
type chartCache struct {
	from, to time.Time
	net      map[string]map[string]int64
	count    map[string]int64
}

// New parses the templates and makes the page's CSRF token (one per process).
func New(cfg Config) (*Desk, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	funcs := template.FuncMap{
		"money": func(minor int64, currency string) string {
			s, err := payment.Format(minor, currency)
			if err != nil {
				return strconv.FormatInt(minor, 10)
			}
			return s
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.In(cfg.Location).Format("2006-01-02 15:04:05")
		},
		"whenp": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.In(cfg.Location).Format("2006-01-02 15:04:05")
		},
		"query": url.QueryEscape,
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("desk templates: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("knetrecon desk"))
	return &Desk{cfg: cfg, tmpl: t, csrf: hex.EncodeToString(mac.Sum(nil))}, nil
}

// Routes mounts the page on mux.
func (d *Desk) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", d.home)
	mux.HandleFunc("GET /search", d.search)
	mux.HandleFunc("GET /payments", d.payments)
	mux.HandleFunc("GET /payments/{id}", d.payment)
	mux.HandleFunc("GET /payments/{id}/events/{event}", d.eventBody)
	mux.HandleFunc("POST /payments/{id}/check", d.checkNow)
	mux.HandleFunc("GET /dead-letters", d.deadLetters)
	mux.HandleFunc("POST /dead-letters/{id}/{action}", d.deadLetterAction)
	mux.HandleFunc("POST /discrepancies/{id}/resolve", d.resolve)
	mux.HandleFunc("GET /reports/{file}", d.reportFile)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "max-age=86400")
		_, _ = w.Write([]byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#17324d"/><path d="M4 11h2V7H4zm3 0h2V4H7zm3 0h2V8h-2z" fill="#fff"/></svg>`))
	})
}

// addNet adds the net of the postings counted in [from, to) to c, by day in the page's zone.
func (d *Desk) addNet(ctx context.Context, c *chartCache, from, to time.Time) error {
	buckets, err := d.cfg.Ledger.PostedNet(ctx, from, to)
	if err != nil {
		return err
	}
	for _, b := range buckets {
		day := b.Minute.In(d.cfg.Location).Format(time.DateOnly)
		if c.net[b.Currency] == nil {
			c.net[b.Currency] = map[string]int64{}
		}
		c.net[b.Currency][day] += b.Net
		c.count[b.Currency] += b.Count
	}
	return nil
}

// Bar is one day of the chart.
type Bar struct {
	Day      string
	Net      int64
	X, Y, H  int
	Label    string
	Negative bool
}

func (d *Desk) render(w http.ResponseWriter, name string, status int, data map[string]any) {
	data["CSRF"] = d.csrf
	var b bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (d *Desk) fail(w http.ResponseWriter, status int, err error) {
	if status >= 500 {
		d.cfg.Log.Error("desk page failed", zap.Int("status", status), zap.Error(err))
	}
	d.render(w, "error.html", status, map[string]any{"Title": http.StatusText(status), "Error": err.Error()})
}

// failRead answers a failed read: 404 for what the ledger does not have, 500 otherwise.
func (d *Desk) failRead(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		d.fail(w, http.StatusNotFound, err)
		return
	}
	d.fail(w, http.StatusInternalServerError, err)
}

func (d *Desk) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	dead, open, err := d.cfg.Ledger.OpenCounts(ctx)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	var health []Check
	if d.cfg.Health != nil {
		health = d.cfg.Health(ctx)
	}
	bars, currency, err := d.chart(ctx, 30)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	stuck, err := d.cfg.Ledger.Discrepancies(ctx, store.DiscrepancyFilter{Kind: "stuck", Limit: 20})
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	openList, err := d.cfg.Ledger.Discrepancies(ctx, store.DiscrepancyFilter{Limit: 50})
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	today := d.cfg.Now().In(d.cfg.Location).Format(time.DateOnly)
	actions, err := d.cfg.Ledger.Actions(ctx, "", 10)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	d.render(w, "home.html", http.StatusOK, map[string]any{"Title": "knetrecon", "Health": health, "DeadLetters": dead, "Actions": actions,
		"Open": open, "Bars": bars, "Currency": currency, "Stuck": stuck, "OpenList": openList, "Today": today,
		"Yesterday": report.Yesterday(d.cfg.Now(), d.cfg.Location)})
}

// chart is the net money per day of the last days, in the busiest currency, as SVG bars.
func (d *Desk) chart(ctx context.Context, days int) ([]Bar, string, error) {
	now := d.cfg.Now().In(d.cfg.Location)
	start := time.Date(now.Year(), now.Month(), now.Day()-days+1, 0, 0, 0, 0, d.cfg.Location)
	todayStart := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, d.cfg.Location)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed.from.Equal(start) || !d.closed.to.Equal(todayStart) {
		c := chartCache{from: start, to: todayStart, net: map[string]map[string]int64{}, count: map[string]int64{}}
		if err := d.addNet(ctx, &c, start, todayStart); err != nil {
			return nil, "", err
		}
		d.closed = c
	}
	c := chartCache{net: map[string]map[string]int64{}, count: maps.Clone(d.closed.count)}
	for cur, days := range d.closed.net {
		c.net[cur] = maps.Clone(days)
	}
	if err := d.addNet(ctx, &c, todayStart, todayStart.AddDate(0, 0, 1)); err != nil {
		return nil, "", err
	}
	net, count := c.net, c.count
	currency := "KWD"
	for c, n := range count {
		if n > count[currency] {
			currency = c
		}
	}
	var peak int64 = 1
	for _, v := range net[currency] {
		peak = max(peak, v, -v)
	}
	const width, height = 20, 150
	bars := make([]Bar, days)
	for i := range days {
		day := start.AddDate(0, 0, i).Format(time.DateOnly)
		v := net[currency][day]
		h := int(max(v, -v) * height / peak)
		bars[i] = Bar{Day: day, Net: v, X: i * (width + 4), Y: height - h, H: h, Negative: v < 0, Label: day}
	}
	return bars, currency, nil
}

func (d *Desk) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	ids, err := d.cfg.Ledger.FindPayments(r.Context(), q, 50)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	if len(ids) == 1 {
		http.Redirect(w, r, "/payments/"+url.PathEscape(ids[0]), http.StatusSeeOther)
		return
	}
	d.render(w, "search.html", http.StatusOK, map[string]any{"Title": "search " + q, "Q": q, "IDs": ids})
}

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
	d.render(w, "payment.html", http.StatusOK, map[string]any{"Title": p.ID, "P": p, "CanCheck": d.cfg.CheckNow != nil, "Actions": actions,
		"Flash": r.URL.Query().Get("flash")})
}

// payments lists payments by status, day (first seen, in the report time zone) and open
// discrepancy kind, newest first, 50 a page (?before= the last one's time).
func (d *Desk) payments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.PaymentFilter{Status: payment.Status(q.Get("status")), Kind: payment.Kind(strings.TrimSpace(q.Get("kind"))), Limit: 50}
	if f.Status != "" && !f.Status.Known() {
		d.fail(w, http.StatusBadRequest, fmt.Errorf("status %q: not a Checkout.com payment status", f.Status))
		return
	}
	if day := q.Get("day"); day != "" {
		from, to, err := report.Day(day, d.cfg.Location)
		if err != nil {
			d.fail(w, http.StatusBadRequest, err)
			return
		}
		f.From, f.To = from, to
	}
	if b := q.Get("before"); b != "" {
		t, err := time.Parse(time.RFC3339Nano, b)
		if err != nil {
			d.fail(w, http.StatusBadRequest, fmt.Errorf("before %q: want an RFC 3339 time", b))
			return
		}
		f.Before = t
	}
	list, err := d.cfg.Ledger.ListPayments(r.Context(), f)
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	next := ""
	if len(list) == f.Limit {
		v := url.Values{"status": {q.Get("status")}, "kind": {q.Get("kind")}, "day": {q.Get("day")},
			"before": {list[len(list)-1].FirstSeenAt.UTC().Format(time.RFC3339Nano)}}
		next = "/payments?" + v.Encode()
	}
	statuses := []string{}
	for _, s := range payment.Statuses() {
		statuses = append(statuses, string(s))
	}
	slices.Sort(statuses)
	d.render(w, "payments.html", http.StatusOK, map[string]any{"Title": "payments", "List": list, "Next": next,
		"Status": q.Get("status"), "Kind": q.Get("kind"), "Day": q.Get("day"), "Statuses": statuses})
}

// eventBody shows the exact body an event was applied from, as text.
func (d *Desk) eventBody(w http.ResponseWriter, r *http.Request) {
	b, err := d.cfg.Ledger.EventBody(r.Context(), r.PathValue("event"))
	if err != nil {
		d.failRead(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

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

// record logs what an operator did; the audit trail itself is kept by the fact that did it.
func (d *Desk) record(r *http.Request, action, subject, note, result string) {
	d.cfg.Log.Info("operator action", zap.String("who", who(r)), zap.String("action", action), zap.String("subject", subject),
		zap.String("note", note), zap.String("result", result))
}

// who names the operator: the basic-auth user when the page asks for one, else "desk".
func who(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		return u
	}
	return "desk"
}

// checkNow asks Checkout.com about one payment now, as `reconciler reconcile` does for a window.
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
	http.Redirect(w, r, "/payments/"+url.PathEscape(id)+"?flash="+url.QueryEscape("checked with Checkout.com: "+outcome), http.StatusSeeOther)
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

// deadLetterAction replays or discards a dead letter (discard with a note, kept with who).
func (d *Desk) deadLetterAction(w http.ResponseWriter, r *http.Request) {
	if !d.formOK(w, r) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		d.fail(w, http.StatusBadRequest, fmt.Errorf("dead letter id %q: want a number", r.PathValue("id")))
		return
	}
	var flash string
	switch r.PathValue("action") {
	case "replay":
		if d.cfg.Replay == nil {
			d.fail(w, http.StatusNotFound, errors.New("replay is not available here"))
			return
		}
		res, err := d.cfg.Replay(r.Context(), id, who(r), strings.TrimSpace(r.PostForm.Get("note")))
		if err != nil {
			flash = fmt.Sprintf("dead letter %d not applied: %v", id, err)
			res = "failed: " + err.Error()
		} else {
			flash = fmt.Sprintf("dead letter %d: %s", id, res)
		}
		d.record(r, "replay", fmt.Sprintf("dead_letter:%d", id), strings.TrimSpace(r.PostForm.Get("note")), res)
	case "discard":
		note := strings.TrimSpace(r.PostForm.Get("note"))
		if note == "" {
			d.fail(w, http.StatusBadRequest, errors.New("a note is required: say why it is set aside"))
			return
		}
		if err := d.cfg.Discard(r.Context(), id, who(r), note); err != nil {
			d.fail(w, http.StatusConflict, err)
			return
		}
		d.record(r, "discard", fmt.Sprintf("dead_letter:%d", id), note, "discarded")
		flash = fmt.Sprintf("dead letter %d discarded", id)
	default:
		d.fail(w, http.StatusNotFound, fmt.Errorf("action %q: want replay or discard", r.PathValue("action")))
		return
	}
	http.Redirect(w, r, "/dead-letters?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

// resolve closes a discrepancy with the operator's note: a POST carrying the page's CSRF token
// from the page's own origin, like `reconciler resolve <id> --note`.
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
	back := r.PostForm.Get("back")
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// reportRange serves the report of several days: /reports/range?from=D&to=D&format=csv|json|xlsx.
func (d *Desk) reportRange(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ext := q.Get("format")
	if reportTypes[ext] == "" {
		d.fail(w, http.StatusBadRequest, fmt.Errorf("format %q: want csv, json or xlsx", ext))
		return
	}
	rep, err := report.BuildRange(r.Context(), d.cfg.Ledger, q.Get("from"), q.Get("to"), d.cfg.Location, d.cfg.Now())
	if err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	d.download(w, rep, ext, rep.From+"_"+rep.To)
}

// reportTypes are the report formats and their content types.
var reportTypes = map[string]string{"csv": "text/csv; charset=utf-8", "json": "application/json",
	"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}

// download writes rep in format ext (one of reportTypes) as an attachment knetrecon-<name>.<ext>.
func (d *Desk) download(w http.ResponseWriter, rep interface {
	WriteCSV(io.Writer) error
	WriteJSON(io.Writer) error
	WriteXLSX(io.Writer) error
}, ext, name string) {
	var b bytes.Buffer
	var err error
	switch ext {
	case "csv":
		err = rep.WriteCSV(&b)
	case "json":
		err = rep.WriteJSON(&b)
	default:
		err = rep.WriteXLSX(&b)
	}
	if err != nil {
		d.fail(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", reportTypes[ext])
	w.Header().Set("Content-Disposition", `attachment; filename="knetrecon-`+name+"."+ext+`"`)
	_, _ = w.Write(b.Bytes())
}

// sameOrigin refuses a browser request whose Origin (or Referer) is another site.
func sameOrigin(r *http.Request) bool {
	for _, h := range []string{r.Header.Get("Origin"), r.Header.Get("Referer")} {
		if h == "" {
			continue
		}
		u, err := url.Parse(h)
		if err != nil || u.Host != r.Host {
			return false
		}
		return true
	}
	return true
}

// reportFile serves a day's report as a download: /reports/2026-12-01.csv (or .json, .xlsx).
func (d *Desk) reportFile(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	if file == "range" {
		d.reportRange(w, r)
		return
	}
	date, ext, ok := strings.Cut(file, ".")
	if !ok {
		d.fail(w, http.StatusNotFound, fmt.Errorf("report %q: want <date>.csv, .json or .xlsx", file))
		return
	}
	if reportTypes[ext] == "" {
		d.fail(w, http.StatusNotFound, fmt.Errorf("report format %q: want csv, json or xlsx", ext))
		return
	}
	if path, ok := report.Written(d.cfg.ReportDir, date, ext); ok {
		f, err := os.Open(path)
		if err != nil {
			d.fail(w, http.StatusInternalServerError, err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Disposition", `attachment; filename="knetrecon-`+filepath.Base(path)+`"`)
		w.Header().Set("X-Knetrecon-Report", "written")
		w.Header().Set("Content-Type", reportTypes[ext])
		http.ServeContent(w, r, filepath.Base(path), time.Time{}, f)
		return
	}
	rep, err := report.Build(r.Context(), d.cfg.Ledger, date, d.cfg.Location, d.cfg.Now())
	if err != nil {
		d.fail(w, http.StatusBadRequest, err)
		return
	}
	d.download(w, rep, ext, date)
}
