package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mustMount mounts a faultfs on temp dirs, or skips naming what the machine lacks.
func mustMount(t *testing.T) (f *FS, backing, mnt string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	backing, mnt = t.TempDir(), t.TempDir()
	f, err := Mount(backing, mnt)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "not permitted") {
			t.Skipf("mounting a FUSE file system is not permitted here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f, backing, mnt
}

func write(t *testing.T, path string, data string, flag int, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fd.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fd.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// content is path's content, or "<none>".
func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func cut(t *testing.T, f *FS) {
	t.Helper()
	f.Cut()
	if err := f.Remount(); err != nil {
		t.Fatal(err)
	}
}

func TestCutKeepsOnlyWhatWasSynced(t *testing.T) {
	f, _, mnt := mustMount(t)
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")
	write(t, a, "hello", 0, true)
	write(t, b, "never synced", 0, false)
	write(t, a, " world", os.O_APPEND, false)
	if got := content(t, a); got != "hello world" {
		t.Fatalf("before the cut a = %q: the processes see what they wrote", got)
	}
	cut(t, f)
	if got := content(t, a); got != "hello" {
		t.Errorf("a = %q after the cut, want the synced %q", got, "hello")
	}
	if got := content(t, b); got != "<none>" {
		t.Errorf("b, created after the last sync, = %q after the cut, want it gone", got)
	}
}

func TestDataSyncedByAnyDescriptor(t *testing.T) {
	f, _, mnt := mustMount(t)
	p := filepath.Join(mnt, "blk")
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString("record-1;"); err != nil {
		t.Fatal(err)
	}
	// Another process's read-only descriptor syncs it, as the receiver's group sync does.
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := w.WriteString("record-2;"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	cut(t, f)
	if got := content(t, p); got != "record-1;" {
		t.Fatalf("after the cut %q, want %q", got, "record-1;")
	}
}

func TestOSyncWritesKept(t *testing.T) {
	f, _, mnt := mustMount(t)
	syncDir(t, mnt)
	p := filepath.Join(mnt, "s")
	write(t, p, "each write synced", os.O_SYNC, false)
	cut(t, f)
	if got := content(t, p); got != "each write synced" {
		t.Fatalf("after the cut %q", got)
	}
}

// The way nats-server writes meta.inf without sync: a temp file written, renamed into place.
func TestRenameNeedsASync(t *testing.T) {
	tests := []struct {
		name                string
		syncTmp, syncParent bool
		wantMeta, wantTmp   string
	}{
		{"nothing synced", false, false, "<none>", "<none>"},
		{"data synced, rename not", true, false, "<none>", "v1"},
		{"rename synced, data not", false, true, "", "<none>"},
		{"both synced", true, true, "v1", "<none>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, mnt := mustMount(t)
			tmp, meta := filepath.Join(mnt, "meta.inf.tmp"), filepath.Join(mnt, "meta.inf")
			write(t, tmp, "v1", 0, tt.syncTmp)
			if err := os.Rename(tmp, meta); err != nil {
				t.Fatal(err)
			}
			if tt.syncParent {
				syncDir(t, mnt)
			}
			cut(t, f)
			if got := content(t, meta); got != tt.wantMeta {
				t.Errorf("meta.inf = %q, want %q", got, tt.wantMeta)
			}
			if got := content(t, tmp); got != tt.wantTmp {
				t.Errorf("meta.inf.tmp = %q, want %q", got, tt.wantTmp)
			}
		})
	}
}

func TestTruncateIsData(t *testing.T) {
	f, _, mnt := mustMount(t)
	p := filepath.Join(mnt, "wal")
	write(t, p, "0123456789", 0, true)
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	cut(t, f)
	if got := content(t, p); got != "0123456789" {
		t.Fatalf("unsynced truncate: %q after the cut", got)
	}
	// Shrunk, grown again and partly rewritten, then synced: zeros where nothing was written.
	if err := os.Truncate(p, 2); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 6); err != nil {
		t.Fatal(err)
	}
	fd, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt([]byte("x"), 5); err != nil {
		t.Fatal(err)
	}
	if err := fd.Sync(); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	cut(t, f)
	if got := content(t, p); got != "01\x00\x00\x00x" {
		t.Fatalf("synced truncates: %q after the cut", got)
	}
}

func TestAfterCutWritesFail(t *testing.T) {
	f, _, mnt := mustMount(t)
	p := filepath.Join(mnt, "f")
	fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Cut()
	if _, err := fd.WriteString("x"); !errors.Is(err, syscall.EIO) {
		t.Errorf("write after the cut: %v, want EIO", err)
	}
	if err := fd.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync after the cut: %v, want EIO", err)
	}
	fd.Close()
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); !errors.Is(err, syscall.EIO) {
		t.Errorf("mkdir after the cut: %v, want EIO", err)
	}
	if err := f.Remount(); err != nil {
		t.Fatal(err)
	}
	if got := content(t, p); got != "<none>" {
		t.Errorf("f = %q after the cut, want it gone (never synced)", got)
	}
	write(t, p, "back", 0, true)
	if got := content(t, p); got != "back" {
		t.Errorf("after Remount: %q", got)
	}
}

// Appenders sync their records while others are appended to the same files; a cut at an
// arbitrary moment keeps every record whose sync returned.
func TestConcurrentAppendsAndSyncs(t *testing.T) {
	f, _, mnt := mustMount(t)
	const writers = 4
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		synced = map[string]int{} // file → records synced
	)
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%d.log", w%2) // two writers per file
			p := filepath.Join(mnt, name)
			fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			defer fd.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := fmt.Fprintf(fd, "%d:%06d:%s\n", w, i, strings.Repeat("x", 100+i%3000)); err != nil {
					return // the cut
				}
				if i%3 == 0 {
					if err := fd.Sync(); err != nil {
						return
					}
					mu.Lock()
					synced[fmt.Sprintf("%s/%d", name, w)] = i + 1
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	f.Cut()
	close(stop)
	wg.Wait()
	if err := f.Remount(); err != nil {
		t.Fatal(err)
	}
	for key, n := range synced {
		name, w, _ := strings.Cut(key, "/")
		b, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !bytes.Contains(b, fmt.Appendf(nil, "%s:%06d:%s\n", w, i, strings.Repeat("x", 100+i%3000))) {
				t.Fatalf("%s: record %d of writer %s was synced and is not there after the cut", name, i, w)
			}
		}
		t.Logf("%s writer %s: %d records synced, all there (file %d bytes)", name, w, n, len(b))
	}
	if len(synced) == 0 {
		t.Fatal("no record was synced")
	}
}
