package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// cmdReport prints the report of date (yesterday in the report time zone when empty), or writes
// its files into outDir.
func cmdReport(ctx context.Context, cfg Config, date, format, outDir string, stdout io.Writer, fail func(error) int) int {
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
	switch format {
	case "json":
		err = d.WriteJSON(stdout)
	case "csv":
		err = d.WriteCSV(stdout)
	case "text", "":
		err = d.WriteText(stdout)
	default:
		return fail(fmt.Errorf("--format %q: want text, json or csv", format))
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// reports writes the daily report inside `reconciler run`: yesterday's, on KNETRECON_REPORT_SCHEDULE
// in the report time zone, and once at start when yesterday's is missing (the process was down
// at the scheduled time).
type reports struct {
	m       *Main
	log     *zap.Logger
	cron    *cron.Cron
	written *prometheus.CounterVec
	// ctx ends at shutdown: a report being built is abandoned (and written by the next run).
	ctx    context.Context
	cancel context.CancelFunc
}

func (m *Main) startReports() error {
	r := &reports{m: m, log: m.Log.Named("report"), written: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "knetrecon_reports_written_total", Help: "Daily reports written by the reconciler, by result (ok, error).",
	}, []string{"result"})}
	m.Registry.MustRegister(r.written)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	cl := cronLogger{r.log}
	r.cron = cron.New(cron.WithLocation(m.Config.ReportLocation), cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	if _, err := r.cron.AddFunc(m.Config.ReportSchedule, func() { r.write(r.yesterday()) }); err != nil {
		return fmt.Errorf("KNETRECON_REPORT_SCHEDULE %q: %w", m.Config.ReportSchedule, err)
	}
	m.reports = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		date := r.yesterday()
		if _, err := os.Stat(filepath.Join(m.Config.ReportDir, date+".json")); errors.Is(err, os.ErrNotExist) {
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

// write builds and writes the report of date; a failure is logged and counted, and the next
// scheduled run (or `reconciler report --out`) writes it again.
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
		r.log.Error("daily report not written", zap.String("date", date), zap.Error(err))
		return
	}
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
