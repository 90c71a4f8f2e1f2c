package events_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"knetrecon/internal/events"
)

// The embedded server's data directory, made on first start with its passwords, is the service
// user's alone under the common umask 022, like every secret file in it.
func TestEmbeddedDataDirIsPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := events.LoadEmbeddedCredentials(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("data dir: %v, %d files", err, len(entries))
	}
	paths := []string{dir}
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s: mode %#o, want the owner's alone", filepath.Base(p), m)
		}
	}
}
