// Package faultfs is test tooling, not part of the service: a FUSE file system that can lose
// power. The fault suite (e2e.TestPowerCut) puts the receiver's NATS store and the ledger on it,
// cuts the power under load and in quiet moments, and counts what the answered webhooks became.
//
// It is a loopback of a backing directory that holds exactly what is on "disk": what a process
// fsynced. Processes on the mount work on a working copy beside it (their page cache, as it
// were), and a Cut drops every change that did not reach the backing directory, the way Jepsen's
// LazyFS simulates a power failure by clearing its cache of unsynced data. The rules:
//
//   - File data (write, truncate, fallocate) reaches the backing directory when that file is
//     fsynced (fsync or fdatasync on any descriptor of it, even one opened read-only; every write
//     through a descriptor opened O_SYNC or O_DSYNC). A write no fsync of its file followed is
//     lost at a cut; what was fsynced is kept.
//   - Names (create, mkdir, rename, unlink, rmdir, link, symlink, mknod) and modes (chmod) are
//     journalled in order and reach the backing directory, all of them, at the next fsync of any
//     file or directory on the mount: the way a journalling file system (ext4, XFS) commits its
//     running transaction. A file created or renamed with no fsync after it is gone after a cut,
//     or back under its old name. This is stricter than LazyFS, which passes names straight
//     through, and laxer than bare POSIX, which asks for an fsync of the directory itself (a
//     stricter model would fail writers that ext4 and XFS keep safe).
//   - Owners, times and extended attributes are not modelled (times are whatever the working
//     copy had; extended attributes are refused).
//
// A cut is three steps, as the power failing then coming back: Cut (from that instant nothing
// more reaches the disk, and every write, sync and change of name on the mount fails with EIO),
// then kill -9 every process using the mount (a real power cut kills them too), then Remount (the
// mount is torn down, the working copy made again from the backing directory, and mounted anew:
// the kernel's page cache of the mount is gone with it).
//
// It needs /dev/fuse and fusermount3 (Debian: fuse3); Available says which is missing.
package faultfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Available reports what this machine lacks to mount a faultfs: nil when it has it all.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("faultfs needs /dev/fuse: %w", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return errors.New("faultfs needs fusermount3 on PATH (Debian: apt-get install fuse3)")
	}
	return nil
}

// FS is a mounted faultfs.
type FS struct {
	backing, work, mountpoint string

	mu     sync.Mutex // guards server and st
	server *fuse.Server
	st     *state
}

// Mount mounts at mountpoint a loopback of backing (an existing directory) whose changes reach
// backing only when synced. The working copy lives in a new folder beside backing, removed by
// Unmount.
func Mount(backing, mountpoint string) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(backing), "."+filepath.Base(backing)+".unsynced-")
	if err != nil {
		return nil, fmt.Errorf("faultfs working copy: %w", err)
	}
	f := &FS{backing: backing, work: work, mountpoint: mountpoint}
	if err := f.mount(); err != nil {
		_ = os.RemoveAll(work)
		return nil, err
	}
	return f, nil
}

// mount makes the working copy anew from the backing directory and mounts it.
func (f *FS) mount() error {
	if err := os.RemoveAll(f.work); err != nil {
		return fmt.Errorf("faultfs: clear working copy: %w", err)
	}
	if err := copyTree(f.backing, f.work); err != nil {
		return fmt.Errorf("faultfs: working copy: %w", err)
	}
	st := &state{backing: f.backing, work: f.work, files: map[fusefs.StableAttr]*file{}}
	var stat syscall.Stat_t
	if err := syscall.Stat(f.work, &stat); err != nil {
		return err
	}
	root := &fusefs.LoopbackRoot{Path: f.work, Dev: stat.Dev}
	rootNode := &node{LoopbackNode: &fusefs.LoopbackNode{RootData: root}, st: st}
	root.RootNode = rootNode
	second := time.Second
	server, err := fusefs.Mount(f.mountpoint, rootNode, &fusefs.Options{
		EntryTimeout: &second,
		AttrTimeout:  &second,
		MountOptions: fuse.MountOptions{
			FsName:        "faultfs",
			Name:          "faultfs",
			DisableXAttrs: true,
			// Every write must come through Write: no kernel write-back cache, no passthrough.
			DisabledCapabilities: fuse.CAP_WRITEBACK_CACHE | fuse.CAP_PASSTHROUGH,
		},
	})
	if err != nil {
		return fmt.Errorf("faultfs: mount %s: %w", f.mountpoint, err)
	}
	f.mu.Lock()
	f.server, f.st = server, st
	f.mu.Unlock()
	return nil
}

// Cut is the power failure: from this instant nothing more reaches the backing directory, and
// every write, sync and change of a name on the mount fails with EIO (reads still answer, from
// what the processes wrote). Kill every process using the mount, then call Remount.
func (f *FS) Cut() {
	f.mu.Lock()
	st := f.st
	f.mu.Unlock()
	if st != nil {
		st.cut()
	}
}

// Remount brings the power back: it cuts (if Cut was not called), unmounts (every process that
// had a file open on the mount must be gone: it fails otherwise), throws away every change that
// was not synced, and mounts the backing directory's contents again at the same place.
func (f *FS) Remount() error {
	f.Cut()
	if err := f.unmount(false); err != nil {
		return err
	}
	return f.mount()
}

// Unmount unmounts (lazily when the mount is still busy) and removes the working copy: what was
// never synced is dropped, as at a cut; the backing directory keeps what was.
func (f *FS) Unmount() error {
	f.Cut()
	err := f.unmount(true)
	if rmErr := os.RemoveAll(f.work); err == nil && rmErr != nil {
		err = rmErr
	}
	return err
}

func (f *FS) unmount(lazy bool) error {
	f.mu.Lock()
	server := f.server
	f.server = nil
	f.mu.Unlock()
	if server == nil {
		return nil
	}
	err := server.Unmount() // retries a few times while the kernel still holds files
	if err == nil {
		return nil
	}
	if !lazy {
		f.mu.Lock()
		f.server = server
		f.mu.Unlock()
		return fmt.Errorf("faultfs: unmount %s (a process still uses it?): %w", f.mountpoint, err)
	}
	if out, lerr := exec.Command("fusermount3", "-u", "-z", f.mountpoint).CombinedOutput(); lerr != nil {
		if out2, uerr := exec.Command("umount", "-l", f.mountpoint).CombinedOutput(); uerr != nil {
			return fmt.Errorf("faultfs: unmount %s: %w; fusermount3 -u -z: %s; umount -l: %s", f.mountpoint, err, out, out2)
		}
	}
	return nil
}

// copyTree copies the directories, regular files and symbolic links under src to dst, modes
// kept.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(to, 0o700); err != nil {
				return err
			}
			return os.Chmod(to, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			return copyFile(path, to, info.Mode().Perm())
		default:
			return nil // devices, pipes and sockets are not kept across a cut
		}
	})
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, perm)
}
