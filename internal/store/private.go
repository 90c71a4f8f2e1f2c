package store

import (
	"errors"
	"os"
	"path/filepath"
)

// The ledger holds every payment: it, its WAL and shared-memory files, its backups and the
// directories made for them are the service user's alone, whatever the process's umask (a unit
// or an image that forgets UMask=0077 must not leave a ledger the whole machine can read).
const (
	// FileMode is the mode of the ledger, its -wal and -shm files and its backups.
	FileMode os.FileMode = 0o600
	// DirMode is the mode of a directory made for a ledger or a backup.
	DirMode os.FileMode = 0o700
)

// makePrivate creates path's directory (DirMode) and the file itself (FileMode, empty: SQLite
// takes an empty file as a new database) when they do not exist, before SQLite opens it. SQLite
// would create the file 0644 less the umask; it makes the -wal and -shm files with the database
// file's own mode, so they follow. A ledger that already exists keeps its mode (an operator may
// have opened it to finance's group on purpose), and so do directories that already exist (a
// volume's root may belong to another user and be shared through its group).
func makePrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), DirMode); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}
