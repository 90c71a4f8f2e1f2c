package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// WatchReload calls reload on SIGHUP, and when one of files changes (checked every every), until
// ctx ends. It is how a process takes new secrets (rotated webhook keys) without a restart. Empty
// names in files are skipped.
func WatchReload(ctx context.Context, files []string, every time.Duration, reload func(reason string)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(every)
	defer t.Stop()
	last := stamp(files)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last = stamp(files)
			reload("SIGHUP")
		case <-t.C:
			if now := stamp(files); now != last {
				last = now
				reload("file changed")
			}
		}
	}
}

// stamp says when and how files last changed.
func stamp(files []string) string {
	var b strings.Builder
	for _, f := range files {
		if f == "" {
			continue
		}
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s %d %d;", f, st.ModTime().UnixNano(), st.Size())
		} else {
			fmt.Fprintf(&b, "%s missing;", f)
		}
	}
	return b.String()
}

// ReadSecretFile reads a secret from a file as the …_FILE settings do: trailing newlines dropped.
func ReadSecretFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	return strings.TrimRight(string(raw), "\r\n"), err
}
