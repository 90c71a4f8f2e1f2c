package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"knetrecon/internal/events/eventstest"
)

func TestParseReportMode(t *testing.T) {
	tests := []struct {
		give    string
		want    os.FileMode
		wantErr string
	}{
		{give: "0640", want: 0o640},
		{give: "600", want: 0o600},
		{give: "0644", want: 0o644},
		{give: "0660", wantErr: "writable by its group"},
		{give: "0646", wantErr: "writable by its group or by anyone"},
		{give: "0040", wantErr: "must be able to read"},
		{give: "rw-r-----", wantErr: "not octal"},
		{give: "01777", wantErr: "not octal"},
	}
	for _, tt := range tests {
		got, err := parseReportMode(tt.give)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "KNETRECON_REPORT_MODE") {
				t.Errorf("%s: error %v, want one naming KNETRECON_REPORT_MODE and %q", tt.give, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %#o, %v; want %#o", tt.give, got, err, tt.want)
		}
	}
}

// The report files take KNETRECON_REPORT_MODE (0640 by default) whatever the umask.
func TestReportFilesTakeTheConfiguredMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ns := eventstest.MustRunNATS(t)
	dir := t.TempDir()
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	for _, tt := range []struct {
		give string
		want os.FileMode
	}{{"", 0o640}, {"0600", 0o600}} {
		vars := map[string]string{"KNETRECON_NATS_URL": ns.ClientURL(), "KNETRECON_LEDGER": filepath.Join(dir, "ledger.db"),
			"KNETRECON_REPORT_TZ": "UTC", "KNETRECON_REPORT_MODE": tt.give}
		out := filepath.Join(dir, "out"+tt.give)
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"migrate"}, env(vars), &stdout, &stderr); code != 0 {
			t.Fatalf("migrate: %d %s", code, stderr.String())
		}
		stdout.Reset()
		if code := run(context.Background(), []string{"report", "--date", yesterday, "--out", out, "--force"}, env(vars), &stdout, &stderr); code != 0 {
			t.Fatalf("report --out: %d %s", code, stderr.String())
		}
		paths := strings.Fields(stdout.String())
		if len(paths) == 0 {
			t.Fatalf("no files listed: %q", stdout.String())
		}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("KNETRECON_REPORT_MODE=%q: %s is %#o, want %#o", tt.give, filepath.Base(p), got, tt.want)
			}
		}
	}
}
