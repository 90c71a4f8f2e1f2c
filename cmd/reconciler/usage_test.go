package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"knetrecon/internal/payment"
	"knetrecon/internal/store"
)

// TestUsageErrors: a command given wrongly exits 2 having done nothing, with one line saying what
// was wrong and then only that command's own usage (at most a screen, never the daemon's
// settings), on stderr; stdout stays empty for scripts.
func TestUsageErrors(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.db") // never created: nothing may be done
	tests := []struct {
		give      []string
		wantLine  string
		wantUsage string
	}{
		{[]string{"stuck", "--jsn"}, "reconciler stuck: flag provided but not defined: -jsn", "Usage: reconciler stuck [--json]"},
		{[]string{"payment", "pay_x", "--jsn"}, "reconciler payment: flag provided but not defined: -jsn", "Usage: reconciler payment"},
		{[]string{"report", "--date", "04/12/2026"}, `--date: report date "04/12/2026": want YYYY-MM-DD`, ""},
		{[]string{"report", "--json", "--format", "csv"}, "--json and --format csv: choose one", ""},
		{[]string{"stuck", "extra"}, `reconciler stuck: takes no arguments, got "extra"`, "Usage: reconciler stuck"},
		{[]string{"digest", "--json", "now"}, `reconciler digest: takes no arguments, got "now"`, "Usage: reconciler digest"},
		{[]string{"sweep", "--once=maybe"}, "reconciler sweep: invalid boolean value", "Usage: reconciler sweep"},
		{[]string{"replay", "--from-seq", "x"}, "reconciler replay: invalid value \"x\" for flag -from-seq", "Usage: reconciler replay"},
		{[]string{"run", "--bogus"}, "reconciler run: flag provided but not defined: -bogus", "`reconciler run --help` lists its settings"},
	}
	for _, c := range commands {
		if c.name != "help" {
			tests = append(tests, struct {
				give      []string
				wantLine  string
				wantUsage string
			}{[]string{c.name, "--no-such-flag"}, "reconciler " + c.name + ": flag provided but not defined: -no-such-flag", "Usage: reconciler " + c.name})
		}
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.give, env(map[string]string{"KNETRECON_LEDGER": ledger}), &out, &errOut)
			stderr := errOut.String()
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if out.Len() > 0 {
				t.Errorf("stdout not empty: %q", out.String())
			}
			if first := strings.SplitN(stderr, "\n", 2)[0]; !strings.Contains(first, tt.wantLine) {
				t.Errorf("first line %q, want %q", first, tt.wantLine)
			}
			if !strings.Contains(stderr, tt.wantUsage) {
				t.Errorf("no %q in\n%s", tt.wantUsage, stderr)
			}
			if n := strings.Count(stderr, "\n"); n > 30 || strings.Contains(stderr, "ack-wait") {
				t.Errorf("%d lines, more than a screen or the daemon's settings:\n%s", n, stderr)
			}
		})
	}
}

// TestEveryCommandTakesJSON: every command but run, help and healthcheck (whose answer is its exit
// status) takes --json, so that a script reads each answer the same way.
func TestEveryCommandTakesJSON(t *testing.T) {
	for _, c := range commands {
		if c.name == "run" || c.name == "help" || c.name == "healthcheck" {
			continue
		}
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{c.name, "--help"}, env(nil), &out, &errOut); code != 0 || !strings.Contains(out.String(), "\n  -json\n") {
			t.Errorf("%s --help (exit %d) lists no --json:\n%s", c.name, code, out.String())
		}
	}
}

// TestCLITimesInReportZone: the text a person reads shows times in KNETRECON_REPORT_TZ (default
// Asia/Kuwait) with the offset; --json keeps RFC 3339 with its offset.
func TestCLITimesInReportZone(t *testing.T) {
	ctx := context.Background()
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	l, err := store.Open(ctx, ledger)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 21, 30, 5, 0, time.UTC) // 00:30:05 on the 4th in Kuwait
	if _, err := l.Apply(ctx, store.Input{EventID: "evt_1", Type: payment.EventCaptured, Origin: store.OriginWebhook, PaymentID: "pay_1",
		ActionID: "act_1", Amount: 5_000, Currency: "KWD", Reference: "ORD-1", Method: "knet", OccurredAt: at, ReceivedAt: at,
		Body: []byte(`{"id":"evt_1"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tz, want string
	}{
		{"", "first seen 2026-12-04 00:30:05 +03:00"},
		{"UTC", "first seen 2026-12-03 21:30:05 +00:00"},
		{"America/New_York", "first seen 2026-12-03 16:30:05 -05:00"},
	}
	for _, tt := range tests {
		vars := map[string]string{"KNETRECON_LEDGER": ledger, "KNETRECON_REPORT_TZ": tt.tz}
		var out, errOut bytes.Buffer
		if code := run(ctx, []string{"payment", "pay_1"}, env(vars), &out, &errOut); code != 0 || !strings.Contains(out.String(), tt.want) {
			t.Errorf("KNETRECON_REPORT_TZ=%q: exit %d, want %q in\n%s%s", tt.tz, code, tt.want, out.String(), errOut.String())
		}
		out.Reset()
		var p struct {
			FirstSeenAt string `json:"first_seen_at"`
		}
		if code := run(ctx, []string{"payment", "pay_1", "--json"}, env(vars), &out, &errOut); code != 0 || json.Unmarshal(out.Bytes(), &p) != nil {
			t.Fatalf("--json: exit %d: %s", code, errOut.String())
		}
		if got, err := time.Parse(time.RFC3339, p.FirstSeenAt); err != nil || !got.Equal(at) {
			t.Errorf("--json first_seen_at %q, want RFC 3339 of %s", p.FirstSeenAt, at)
		}
	}
}
