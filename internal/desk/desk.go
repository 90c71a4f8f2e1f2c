// Package desk is the operator's web page, served on the reconciler's admin address. Its home
// page answers "does anything need me?": payments open past KNET's window with what the sweep
// does next, stuck payments, open discrepancies by kind with the money at stake, dead letters,
// and the road's health; then the money of the last 30 days as a chart and the daily reports to
// download. A search over payment, event and action ids, references and KNET ids; a payment's
// whole story; lists of payments and discrepancies with filters. Its actions (resolve, replay,
// discard, ask Checkout.com) go through the same facts as their CLI twins, each confirmed on a
// page of its own first, so they work without JavaScript.
//
// Server-rendered (html/template, embedded: no CDN, works offline). Every request passes the
// guard (guard.go): the desk's own Host only, and the operator the audit trail records is the
// one the request authenticated as. Times are shown in the report time zone with its offset.
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

	// Sweep is the sweep's configuration, from which the home page says what the sweep does
	// next about a payment open past KNET's window, and when; nil: the sweep is off here.
	Sweep *reconcile.SweepConfig
	// SweepSchedule is the sweep's cron spec, named on the page (KNETRECON_SWEEP_SCHEDULE).
	SweepSchedule string

	// Hosts are the Host values the desk answers besides loopback names (KNETRECON_DESK_HOSTS):
	// host, or host:port; any other Host is refused (a DNS-rebinding page's, say).
	Hosts []string
	// Tokens are the operators' tokens by operator name (KNETRECON_DESK_TOKENS_FILE, and
	// KNETRECON_DESK_TOKEN as DefaultOperator's): with any, a request needs one, as a bearer
	// token or a basic-auth password, and the audit trail records its name.
	Tokens map[string]string
	// OperatorHeader names the header an authenticating proxy sets to the operator
	// (KNETRECON_DESK_OPERATOR_HEADER); empty: no header is trusted. Set it only when the
	// desk is reachable through that proxy alone.
	OperatorHeader string
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
	// tokenNames are cfg.Tokens' names, sorted: every token is compared on every request.
	tokenNames []string

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
		"when": func(t time.Time) string { return stamp(t, cfg.Location) },
		"whenp": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return stamp(*t, cfg.Location)
		},
		"query":  url.QueryEscape,
		"fields": func(details []byte, currency string) []Field { return fields(details, currency, cfg.Location) },
		"words":  words,
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
	names := slices.Sorted(maps.Keys(cfg.Tokens))
	hosts := make([]string, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		hosts[i] = strings.ToLower(h)
	}
	cfg.Hosts = hosts
	return &Desk{cfg: cfg, tmpl: t, csrf: hex.EncodeToString(mac.Sum(nil)), tokenNames: names}, nil
}

// TimeLayout is how the desk writes a time: in the report time zone, with its offset.
const TimeLayout = "2006-01-02 15:04:05 -07:00"

// stamp writes t in loc with its offset; "" for the zero time.
func stamp(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format(TimeLayout)
}

// Routes mounts the page on mux, every route behind the guard (the desk's Host, an operator's
// credentials when configured): mux may be shared with other handlers (the admin address's
// probes and metrics), which the guard leaves alone.
func (d *Desk) Routes(mux *http.ServeMux) {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /{$}":                          d.home,
		"GET /search":                       d.search,
		"GET /payments":                     d.payments,
		"GET /payments/{id}":                d.payment,
		"GET /payments/{id}/events/{event}": d.eventBody,
		"POST /payments/{id}/check":         d.checkNow,
		"GET /discrepancies":                d.discrepancies,
		"POST /discrepancies/{id}/resolve":  d.resolve,
		"POST /discrepancies/resolve":       d.resolveBulk,
		"GET /dead-letters":                 d.deadLetters,
		"GET /dead-letters/{id}":            d.deadLetter,
		"GET /dead-letters/{id}/body":       d.deadLetterBody,
		"POST /dead-letters/{id}/{action}":  d.deadLetterAction,
		"POST /dead-letters/bulk":           d.deadLetterBulk,
		"GET /reports/{file}":               d.reportFile,
		"GET /favicon.ico": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "image/svg+xml")
			w.Header().Set("Cache-Control", "max-age=86400")
			_, _ = w.Write([]byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#17324d"/><path d="M4 11h2V7H4zm3 0h2V4H7zm3 0h2V8h-2z" fill="#fff"/></svg>`))
		},
	} {
		mux.Handle(pattern, d.guard(h))
	}
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
	data["Zone"] = d.zone()
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
		"Status": q.Get("status"), "Kind": q.Get("kind"), "Day": q.Get("day"), "Statuses": statuses, "Kinds": kinds})
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
