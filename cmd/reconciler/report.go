package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"knetrecon/internal/report"
)

// ReportsOn reports whether `reconciler run` writes the daily report on its schedule.
func (c Config) ReportsOn() bool {
	return !strings.EqualFold(c.ReportSchedule, "off") && c.ReportSchedule != ""
}

// cmdReportRange prints (or writes into outDir) the report of the days from..to: the money that
// counts in them and one row per payment.
func cmdReportRange(ctx context.Context, cfg Config, date, from, to, format, outDir string, stdout io.Writer, fail func(error) int) int {
	if date != "" || from == "" || to == "" {
		return fail(fmt.Errorf("usage: reconciler report --date D | --from D --to D [--format text|json|csv|xlsx] [--out DIR]"))
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	r, err := report.BuildRange(ctx, l, from, to, cfg.ReportLocation, time.Now())
	if err != nil {
		return fail(err)
	}
	if outDir != "" {
		paths, err := report.WriteRangeFiles(outDir, r)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, strings.Join(paths, "\n"))
		return 0
	}
	if err := writeFormat(r, format, stdout); err != nil {
		return fail(err)
	}
	return 0
}

// formatted is what a daily and a range report can both be written as.
type formatted interface {
	WriteText(io.Writer) error
	WriteJSON(io.Writer) error
	WriteCSV(io.Writer) error
	WriteXLSX(io.Writer) error
}

// writeFormat writes r in format (text when empty).
func writeFormat(r formatted, format string, w io.Writer) error {
	switch format {
	case "json":
		return r.WriteJSON(w)
	case "csv":
		return r.WriteCSV(w)
	case "xlsx":
		return r.WriteXLSX(w)
	case "text", "":
		return r.WriteText(w)
	}
	return fmt.Errorf("--format %q: want text, json, csv or xlsx", format)
}

// cmdReport prints the report of date (yesterday in the report time zone when empty), or writes
// its files into outDir.
func cmdReport(ctx context.Context, cfg Config, date, from, to, format, outDir string, stdout io.Writer, fail func(error) int) int {
	if from != "" || to != "" {
		return cmdReportRange(ctx, cfg, date, from, to, format, outDir, stdout, fail)
	}
	if date == "" {
		date = report.Yesterday(time.Now(), cfg.ReportLocation)
	}
	l, err := openLedger(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	d, err := report.Build(ctx, l, date, cfg.ReportLocation, time.Now())
	if err != nil {
		return fail(err)
	}
	if outDir != "" {
		paths, err := report.WriteFiles(outDir, d)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, strings.Join(paths, "\n"))
		return 0
	}
	if err := writeFormat(d, format, stdout); err != nil {
		return fail(err)
	}
	return 0
}

// reportRetry is how often a day whose report could not be written is tried again.
const reportRetry = 10 * time.Minute

// reportCatchUp is how many days back the start looks for reports never written.
const reportCatchUp = 7

// reports writes the daily report inside `reconciler run`: yesterday's, on KNETRECON_REPORT_SCHEDULE
// in the report time zone, and at start every missing day of the last week (the process was down
// at the scheduled time). A day that fails is tried again every reportRetry until it is written;
// knetrecon_reports_unwritten stays above zero (and its alert on) until then.
type reports struct {
	m         *Main
	mu        sync.Mutex
	failed    map[string]bool
	unwritten prometheus.Gauge
	log       *zap.Logger
	cron      *cron.Cron
	written   *prometheus.CounterVec
	// ctx ends at shutdown: a report being built is abandoned (and written by the next run).
	ctx    context.Context
	cancel context.CancelFunc
}

func (m *Main) startReports() error {
	r := &reports{m: m, log: m.Log.Named("report"), written: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "knetrecon_reports_written_total", Help: "Daily reports written by the reconciler, by result (ok, error).",
	}, []string{"result"})}
	r.failed = map[string]bool{}
	r.unwritten = prometheus.NewGauge(prometheus.GaugeOpts{Name: "knetrecon_reports_unwritten",
		Help: "Days whose daily report failed and is not written yet (retried every 10 minutes)."})
	m.Registry.MustRegister(r.written, r.unwritten)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	cl := cronLogger{r.log}
	r.cron = cron.New(cron.WithLocation(m.Config.ReportLocation), cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	if _, err := r.cron.AddFunc(m.Config.ReportSchedule, func() { r.write(r.yesterday()) }); err != nil {
		return fmt.Errorf("KNETRECON_REPORT_SCHEDULE %q: %w", m.Config.ReportSchedule, err)
	}
	if _, err := r.cron.AddFunc(fmt.Sprintf("@every %s", reportRetry), r.retry); err != nil {
		return err
	}
	m.reports = r
	m.reportsLive.Store(r)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for _, date := range r.missing() {
			r.write(date)
		}
	}()
	r.cron.Start()
	r.log.Info("daily report scheduled", zap.String("schedule", m.Config.ReportSchedule),
		zap.String("time_zone", m.Config.ReportLocation.String()), zap.String("dir", m.Config.ReportDir))
	return nil
}

// yesterday is the last whole day on the process's clock (the ledger's: Main.Now when set).
func (r *reports) yesterday() string {
	return report.Yesterday(r.m.ledger.Now(), r.m.Config.ReportLocation)
}

// missing returns the days, oldest first, of the last week whose report file is not there:
// yesterday always, the days before it from the ledger's first applied event on.
func (r *reports) missing() []string {
	loc := r.m.Config.ReportLocation
	first, err := r.m.ledger.FirstAppliedAt(r.ctx)
	if err != nil {
		r.log.Warn("first applied event not read; catching up yesterday only", zap.Error(err))
	}
	var out []string
	now := r.m.ledger.Now().In(loc)
	for back := reportCatchUp; back >= 1; back-- {
		day := time.Date(now.Year(), now.Month(), now.Day()-back, 0, 0, 0, 0, loc)
		if back > 1 && (first.IsZero() || !day.AddDate(0, 0, 1).After(first)) {
			continue // before the ledger had anything: nothing was ever due
		}
		date := day.Format(time.DateOnly)
		if _, err := os.Stat(filepath.Join(r.m.Config.ReportDir, date+".json")); err != nil {
			out = append(out, date) // not there, or the folder unreadable: write it (or fail visibly)
		}
	}
	return out
}

// retry writes again every day whose report failed, oldest first.
func (r *reports) retry() {
	r.mu.Lock()
	dates := make([]string, 0, len(r.failed))
	for d := range r.failed {
		dates = append(dates, d)
	}
	r.mu.Unlock()
	sort.Strings(dates)
	for _, d := range dates {
		r.write(d)
	}
}

// unwrittenDays lists the days whose report failed and is not written yet.
func (r *reports) unwrittenDays() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	days := slices.Collect(maps.Keys(r.failed))
	slices.Sort(days)
	return days
}

// setFailed records whether date's report is still unwritten, and updates the gauge.
func (r *reports) setFailed(date string, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if failed {
		r.failed[date] = true
	} else {
		delete(r.failed, date)
	}
	r.unwritten.Set(float64(len(r.failed)))
}

// write builds and writes the report of date; a failure is logged and counted, and the day is
// tried again every reportRetry until it is written.
func (r *reports) write(date string) {
	d, err := report.Build(r.ctx, r.m.ledger, date, r.m.Config.ReportLocation, r.m.ledger.Now())
	var paths []string
	if err == nil {
		paths, err = report.WriteFiles(r.m.Config.ReportDir, d)
	}
	if err != nil && r.ctx.Err() != nil {
		r.log.Info("daily report abandoned at shutdown", zap.String("date", date))
		return
	}
	if err != nil {
		r.written.WithLabelValues("error").Inc()
		r.setFailed(date, true)
		r.log.Error("daily report not written; trying again", zap.String("date", date), zap.Duration("every", reportRetry), zap.Error(err))
		return
	}
	r.m.lastReport.Store(&lastRun{At: time.Now(), Detail: fmt.Sprintf("%s written (%d postings, balanced %t)", date, len(d.Postings), d.Balanced)})
	r.setFailed(date, false)
	r.written.WithLabelValues("ok").Inc()
	r.log.Info("daily report written", zap.String("date", date), zap.Strings("files", paths),
		zap.Int("postings", len(d.Postings)), zap.Int("late_postings", len(d.LatePostings)), zap.Bool("balanced", d.Balanced))
}

// stop stops scheduling, abandons a report being built and waits for it, bounded by ctx.
func (r *reports) stop(ctx context.Context) {
	done := r.cron.Stop()
	r.cancel()
	select {
	case <-done.Done():
	case <-ctx.Done():
		r.log.Warn("daily report did not finish in time")
	}
}
