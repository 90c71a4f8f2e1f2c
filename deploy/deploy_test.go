// Package deploy holds how knetrecon runs in production; its test keeps the alert rules honest.
package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every metric an alert rule or the runbook names must be one the code registers: a renamed
// series would silently disarm an alert.
func TestAlertRulesNameRealMetrics(t *testing.T) {
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`knetrecon_[a-z_]+`)
	seen := map[string]bool{}
	for _, src := range [][]byte{rules, readme} {
		for _, m := range names.FindAllString(string(src), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
			if seen[base] {
				continue
			}
			seen[base] = true
			if !strings.Contains(code.String(), `"`+base+`"`) {
				t.Errorf("%s is named in the alert rules or README but no code registers it", base)
			}
		}
	}
	if len(seen) < 8 {
		t.Fatalf("only %d metric names found: %v", len(seen), seen)
	}
}
