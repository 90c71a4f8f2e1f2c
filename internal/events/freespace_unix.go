//go:build linux || darwin || freebsd

package events

import "syscall"

// freeBytes is the space left for an unprivileged writer on the file system holding dir, and
// whether it could be read.
func freeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(uint64(st.Bavail) * uint64(st.Bsize)), true
}
