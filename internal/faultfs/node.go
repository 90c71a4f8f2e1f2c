package faultfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// state is one mount's: the journal of names not yet on disk and what each file wrote since
// its last sync. A cut freezes it; the next mount starts a new one.
type state struct {
	backing, work string
	frozen        atomic.Bool

	mu      sync.Mutex // orders changes of names and syncs; guards journal
	journal []op

	filesMu sync.Mutex
	files   map[fusefs.StableAttr]*file // by inode number and generation: outlives the kernel forgetting a node
}

func (s *state) cut() {
	s.mu.Lock() // waits for a sync under way: it reached the disk before the power went
	s.frozen.Store(true)
	s.mu.Unlock()
}

func (s *state) file(a fusefs.StableAttr) *file {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	f, ok := s.files[a]
	if !ok {
		f = &file{pages: map[int64]struct{}{}, minSize: -1}
		s.files[a] = f
	}
	return f
}

// change makes a change of names in the working copy (do) and journals it, in one step with
// respect to syncs.
func (s *state) change(o op, do func() syscall.Errno) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen.Load() {
		return syscall.EIO
	}
	errno := do()
	if errno == 0 {
		s.journal = append(s.journal, o)
	}
	return errno
}

// commit writes the journal of names to the backing directory, in order. s.mu is held.
func (s *state) commit() error {
	var first error
	for _, o := range s.journal {
		if err := o.apply(s.backing); err != nil && first == nil {
			first = err
		}
	}
	s.journal = s.journal[:0]
	return first
}

type opKind int

const (
	opCreate opKind = iota
	opMkdir
	opMknod
	opSymlink
	opLink
	opRename
	opUnlink
	opRmdir
	opChmod
)

// op is one change of names, by paths relative to the mount's root.
type op struct {
	kind       opKind
	path, to   string // to: a rename's new name, a link's new name; path: a symlink's target for opSymlink
	mode, dev  uint32
	renameFlag uint32
}

func (o op) apply(root string) error {
	p := filepath.Join(root, o.path)
	var err error
	switch o.kind {
	case opCreate:
		var f *os.File
		if f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE, os.FileMode(o.mode).Perm()); err == nil {
			err = f.Close()
		}
	case opMkdir:
		if err = os.Mkdir(p, os.FileMode(o.mode).Perm()); errors.Is(err, os.ErrExist) {
			err = nil
		}
	case opMknod:
		err = unix.Mknod(p, o.mode, int(o.dev))
	case opSymlink:
		err = os.Symlink(o.path, filepath.Join(root, o.to))
	case opLink:
		err = os.Link(p, filepath.Join(root, o.to))
	case opRename:
		err = unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, filepath.Join(root, o.to), uint(o.renameFlag))
	case opUnlink:
		if err = os.Remove(p); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	case opRmdir:
		if err = syscall.Rmdir(p); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	case opChmod:
		err = syscall.Chmod(p, o.mode&07777)
	}
	if err != nil {
		return fmt.Errorf("faultfs: journal op %d on %s: %w", o.kind, o.path, err)
	}
	return nil
}

// file is what one regular file wrote since its last sync: which 4 KiB pages, and the smallest
// size a truncate gave it.
type file struct {
	rw sync.RWMutex // writers share it; a sync takes it alone, so no write is half-recorded

	mu      sync.Mutex // guards the rest among writers
	pages   map[int64]struct{}
	all     bool  // too large a range to list: copy the whole file
	minSize int64 // -1: no truncate since the last sync
}

const pageShift = 12

// maxPages bounds the pages one change may list before the whole file is marked (a fallocate of
// gigabytes).
const maxPages = 1 << 14

func (f *file) written(off, n int64) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	first, last := off>>pageShift, (off+n-1)>>pageShift
	if last-first >= maxPages {
		f.all = true
		return
	}
	for p := first; p <= last; p++ {
		f.pages[p] = struct{}{}
	}
}

func (f *file) truncated(size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.minSize < 0 || size < f.minSize {
		f.minSize = size
	}
}

// flush copies what f wrote since its last sync from the working copy to the backing directory.
// The caller holds f.rw alone.
func (f *file) flush(from, to string) error {
	if len(f.pages) == 0 && !f.all && f.minSize < 0 {
		return nil
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer dst.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if f.minSize >= 0 {
		if err := dst.Truncate(f.minSize); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<20)
	copyRange := func(off, end int64) error {
		end = min(end, size)
		for off < end {
			n, err := src.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
			if n > 0 {
				if _, err := dst.WriteAt(buf[:n], off); err != nil {
					return err
				}
				off += int64(n)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if f.all {
		if err := copyRange(0, size); err != nil {
			return err
		}
	} else {
		pages := make([]int64, 0, len(f.pages))
		for p := range f.pages {
			pages = append(pages, p)
		}
		slices.Sort(pages)
		for i := 0; i < len(pages); {
			j := i + 1
			for j < len(pages) && pages[j] == pages[j-1]+1 {
				j++
			}
			if err := copyRange(pages[i]<<pageShift, (pages[j-1]+1)<<pageShift); err != nil {
				return err
			}
			i = j
		}
	}
	if err := dst.Truncate(size); err != nil {
		return err
	}
	f.pages, f.all, f.minSize = map[int64]struct{}{}, false, -1
	return nil
}

// node is a loopback node whose changes are recorded.
type node struct {
	*fusefs.LoopbackNode
	st *state
}

var (
	_ fusefs.NodeWrapChilder = (*node)(nil)
	_ fusefs.NodeOpener      = (*node)(nil)
	_ fusefs.NodeCreater     = (*node)(nil)
	_ fusefs.NodeFsyncer     = (*node)(nil)
	_ fusefs.NodeSetattrer   = (*node)(nil)
	_ fusefs.NodeRenamer     = (*node)(nil)
	_ fusefs.NodeTmpfiler    = (*node)(nil)
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(ctx context.Context, ops fusefs.InodeEmbedder) fusefs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fusefs.LoopbackNode), st: n.st}
}

// rel is the node's path relative to the mount's root ("" for a node no longer in the tree).
func (n *node) rel() string { return relOf(n) }

func (n *node) child(name string) string { return filepath.Join(n.rel(), name) }

func relOf(e fusefs.InodeEmbedder) string {
	rel, _ := pathOf(e.EmbeddedInode())
	return rel
}

// pathOf is in's path from the mount's root; false when it has no name any more (removed).
func pathOf(in *fusefs.Inode) (string, bool) {
	root := in.Root()
	var names []string
	for p := in; p != root; {
		name, parent := p.Parent()
		if parent == nil {
			return "", false
		}
		names = append(names, name)
		p = parent
	}
	slices.Reverse(names)
	return filepath.Join(names...), true
}

// Open wraps the loopback's file handle so that its writes are recorded.
func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if n.st.frozen.Load() && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EIO
	}
	f := n.st.file(n.StableAttr())
	f.rw.RLock()
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno == 0 && flags&syscall.O_TRUNC != 0 {
		f.truncated(0)
	}
	f.rw.RUnlock()
	if errno != 0 {
		return nil, 0, errno
	}
	return n.handle(fh, f, flags), fl, 0
}

func (n *node) handle(fh fusefs.FileHandle, f *file, flags uint32) *handle {
	return &handle{lf: fh.(*fusefs.LoopbackFile), f: f, n: n, sync: flags&syscall.O_DSYNC != 0}
}

// Create creates the file in the working copy and journals its name.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	var (
		ch *fusefs.Inode
		fh fusefs.FileHandle
		fl uint32
	)
	errno := n.st.change(op{kind: opCreate, path: n.child(name), mode: mode}, func() syscall.Errno {
		var errno syscall.Errno
		ch, fh, fl, errno = n.LoopbackNode.Create(ctx, name, flags, mode, out)
		return errno
	})
	if errno != 0 {
		return nil, nil, 0, errno
	}
	f := n.st.file(ch.StableAttr())
	if flags&syscall.O_TRUNC != 0 {
		f.truncated(0) // it was there already: O_CREAT opened it
	}
	return ch, n.handle(fh, f, flags), fl, 0
}

// Tmpfile is refused: a file with no name has no place in the journal of names.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// Mkdir journals the new directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var ch *fusefs.Inode
	errno := n.st.change(op{kind: opMkdir, path: n.child(name), mode: mode}, func() syscall.Errno {
		var errno syscall.Errno
		ch, errno = n.LoopbackNode.Mkdir(ctx, name, mode, out)
		return errno
	})
	return ch, errno
}

// Mknod journals the new node.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var ch *fusefs.Inode
	errno := n.st.change(op{kind: opMknod, path: n.child(name), mode: mode, dev: rdev}, func() syscall.Errno {
		var errno syscall.Errno
		ch, errno = n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
		return errno
	})
	return ch, errno
}

// Symlink journals the new link.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var ch *fusefs.Inode
	errno := n.st.change(op{kind: opSymlink, path: target, to: n.child(name)}, func() syscall.Errno {
		var errno syscall.Errno
		ch, errno = n.LoopbackNode.Symlink(ctx, target, name, out)
		return errno
	})
	return ch, errno
}

// Link journals the new name.
func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var ch *fusefs.Inode
	errno := n.st.change(op{kind: opLink, path: relOf(target), to: n.child(name)}, func() syscall.Errno {
		var errno syscall.Errno
		ch, errno = n.LoopbackNode.Link(ctx, target, name, out)
		return errno
	})
	return ch, errno
}

// Rename journals the move.
func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	o := op{kind: opRename, path: n.child(name), to: filepath.Join(relOf(newParent), newName), renameFlag: flags}
	return n.st.change(o, func() syscall.Errno {
		return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	})
}

// Unlink journals the removal.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.st.change(op{kind: opUnlink, path: n.child(name)}, func() syscall.Errno {
		return n.LoopbackNode.Unlink(ctx, name)
	})
}

// Rmdir journals the removal.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.st.change(op{kind: opRmdir, path: n.child(name)}, func() syscall.Errno {
		return n.LoopbackNode.Rmdir(ctx, name)
	})
}

// Setattr records a truncate as a change of the file's data and journals a chmod.
func (n *node) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.st.frozen.Load() {
		return syscall.EIO
	}
	size, sized := in.GetSize()
	do := func() syscall.Errno {
		if !sized {
			return n.LoopbackNode.Setattr(ctx, fh, in, out)
		}
		f := n.st.file(n.StableAttr())
		f.rw.RLock()
		defer f.rw.RUnlock()
		errno := n.LoopbackNode.Setattr(ctx, fh, in, out)
		if errno == 0 {
			f.truncated(int64(size))
		}
		return errno
	}
	if mode, ok := in.GetMode(); ok {
		return n.st.change(op{kind: opChmod, path: n.rel(), mode: mode}, do)
	}
	return do()
}

// Fsync of a file or a directory commits the journal of names, then, for a regular file, copies
// what it wrote since its last sync to the backing directory.
func (n *node) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	return n.sync()
}

func (n *node) sync() syscall.Errno {
	s := n.st
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen.Load() {
		return syscall.EIO
	}
	if err := s.commit(); err != nil {
		return syscall.EIO
	}
	attr := n.StableAttr()
	if attr.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return 0
	}
	rel, ok := n.livePath()
	if !ok {
		return 0 // no name any more: nothing of it survives a cut
	}
	f := s.file(attr)
	f.rw.Lock()
	defer f.rw.Unlock()
	if err := f.flush(filepath.Join(s.work, rel), filepath.Join(s.backing, rel)); err != nil {
		return syscall.EIO
	}
	return 0
}

// livePath is the node's path, checked against the working copy: a rename answered a moment ago
// may not be in the node tree yet (go-fuse moves the node after the rename returns).
func (n *node) livePath() (string, bool) {
	ino := n.StableAttr().Ino
	for range 200 {
		rel, named := pathOf(n.EmbeddedInode())
		if !named {
			return "", false
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(n.st.work, rel), &st); err == nil && st.Ino == ino {
			return rel, true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "", false
}

// handle is an open file: the loopback's, with its writes recorded. It does not offer the
// loopback's passthrough descriptor, so every write comes through here.
type handle struct {
	lf   *fusefs.LoopbackFile
	f    *file
	n    *node
	sync bool // opened O_SYNC or O_DSYNC: every write is synced
}

var (
	_ fusefs.FileReader    = (*handle)(nil)
	_ fusefs.FileWriter    = (*handle)(nil)
	_ fusefs.FileWritever  = (*handle)(nil)
	_ fusefs.FileFlusher   = (*handle)(nil)
	_ fusefs.FileReleaser  = (*handle)(nil)
	_ fusefs.FileGetattrer = (*handle)(nil)
	_ fusefs.FileSetattrer = (*handle)(nil)
	_ fusefs.FileLseeker   = (*handle)(nil)
	_ fusefs.FileAllocater = (*handle)(nil)
)

// Read reads the working copy.
func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return h.lf.Read(ctx, buf, off)
}

// Write writes the working copy and records the pages.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return h.write(off, func() (uint32, syscall.Errno) { return h.lf.Write(ctx, data, off) })
}

// Writev is Write of several buffers.
func (h *handle) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	return h.write(off, func() (uint32, syscall.Errno) { return h.lf.Writev(ctx, data, off) })
}

func (h *handle) write(off int64, do func() (uint32, syscall.Errno)) (uint32, syscall.Errno) {
	if h.n.st.frozen.Load() {
		return 0, syscall.EIO
	}
	h.f.rw.RLock()
	n, errno := do()
	h.f.written(off, int64(n))
	h.f.rw.RUnlock()
	if errno == 0 && h.sync {
		errno = h.n.sync()
	}
	return n, errno
}

// Allocate changes the working copy and records the range.
func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if h.n.st.frozen.Load() {
		return syscall.EIO
	}
	h.f.rw.RLock()
	defer h.f.rw.RUnlock()
	errno := h.lf.Allocate(ctx, off, size, mode)
	if errno == 0 {
		h.f.written(int64(off), int64(size))
	}
	return errno
}

// Setattr is the loopback's; node.Setattr records what it changes.
func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Setattr(ctx, in, out)
}

// Getattr is the loopback's.
func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Getattr(ctx, out)
}

// Lseek is the loopback's.
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return h.lf.Lseek(ctx, off, whence)
}

// Flush is the loopback's (close(2) is no sync).
func (h *handle) Flush(ctx context.Context) syscall.Errno { return h.lf.Flush(ctx) }

// Release closes the working copy's descriptor.
func (h *handle) Release(ctx context.Context) syscall.Errno { return h.lf.Release(ctx) }

// OpendirHandle wraps the loopback's directory stream so that an fsync of the directory commits
// the journal of names.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{ds: fh.(loopbackDir), n: n}, fl, 0
}

// loopbackDir is what the loopback's directory stream offers.
type loopbackDir interface {
	fusefs.FileReaddirenter
	fusefs.FileSeekdirer
	fusefs.FileReleasedirer
}

// dirHandle is an open directory: the loopback's, with fsync going through the journal.
type dirHandle struct {
	ds loopbackDir
	n  *node
}

var _ fusefs.FileFsyncdirer = (*dirHandle)(nil)

// Readdirent is the loopback's.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.ds.Readdirent(ctx)
}

// Seekdir is the loopback's.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.ds.Seekdir(ctx, off)
}

// Releasedir is the loopback's.
func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) { d.ds.Releasedir(ctx, flags) }

// Fsyncdir commits the journal of names.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return d.n.sync() }
