package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"knetrecon/internal/store"
)

// The ledger, its WAL and shared-memory files, its backups and the directories made for them are
// the service user's alone under the common umask 022, which would leave SQLite's own files 0644.
func TestLedgerFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "ledger.db")
	l, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	backup := filepath.Join(t.TempDir(), "backups", "ledger.backup")
	if _, err := l.Backup(context.Background(), backup); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		give string
		want os.FileMode
	}{
		{dir, store.DirMode},
		{path, store.FileMode},
		{path + "-wal", store.FileMode},
		{path + "-shm", store.FileMode},
		{filepath.Dir(backup), store.DirMode},
		{backup, store.FileMode},
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.give)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(tt.give), err)
			continue
		}
		if got := fi.Mode().Perm(); got != tt.want {
			t.Errorf("%s: mode %#o, want %#o", filepath.Base(tt.give), got, tt.want)
		}
	}
}
