package events

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// MetaSync makes the embedded server's stream and consumer definitions durable. nats-server
// writes a stream's or a consumer's meta.inf (and meta.sum) beside its messages and renames it into
// place without an fsync unless every write is synced (KNETRECON_NATS_SYNC_ALWAYS): after a power
// cut the definitions came back empty while the message blocks (synced by the group commit)
// survived. MetaSync fsyncs every definition file that changed since its last round, and the
// folders holding them, so that what the receiver and the reconcilers rely on is on the disk.
type MetaSync struct {
	store string
	seen  map[string]metaStamp
}

type metaStamp struct {
	mod  time.Time
	size int64
}

// NewMetaSync returns a MetaSync of the JetStream store under storeDir.
func NewMetaSync(storeDir string) *MetaSync {
	return &MetaSync{store: storeDir, seen: map[string]metaStamp{}}
}

// Sync fsyncs the definitions changed since the last call, and their folders; it returns how
// many files it synced. A file removed meanwhile (a consumer deleted) is skipped.
func (s *MetaSync) Sync() (int, error) {
	var files []string
	for _, pattern := range []string{
		filepath.Join(s.store, "jetstream", "*", "streams", "*", "meta.*"),
		filepath.Join(s.store, "jetstream", "*", "streams", "*", "obs", "*", "meta.*"),
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return 0, err
		}
		files = append(files, m...)
	}
	dirs := map[string]bool{}
	n := 0
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			continue
		}
		stamp := metaStamp{st.ModTime(), st.Size()}
		if s.seen[f] == stamp {
			continue
		}
		if err := syncPath(f); err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return n, err
		}
		s.seen[f] = stamp
		n++
		// The folder holding it (the rename), and its parent (a new stream or consumer folder).
		dirs[filepath.Dir(f)] = true
		dirs[filepath.Dir(filepath.Dir(f))] = true
	}
	for d := range dirs {
		if err := syncPath(d); err != nil && !os.IsNotExist(err) {
			return n, err
		}
	}
	return n, nil
}

// syncPath fsyncs a file or a folder.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// StreamFilesWithoutDefinition reports whether storeDir holds message blocks of the stream while
// the server does not know the stream: its definition was lost (a power cut before it reached the
// disk), and creating the stream again will take those files over.
func StreamFilesWithoutDefinition(storeDir string) bool {
	blocks, _ := filepath.Glob(filepath.Join(storeDir, "jetstream", "*", "streams", StreamName, "msgs", "*.blk"))
	return len(blocks) > 0
}
