package securefile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// MkdirPrivate creates dir (and parents) with mode 0700. An existing
// directory keeps its mode; callers that care check it with CheckPrivate.
// Run as root below another user's directory, it gives the directories it
// creates to that user (the owner of the nearest one that existed), as
// WriteFile and LockFile do with files: a root-owned 0700 directory in the
// runner's token cache or config dir would lock the runner out of it.
func MkdirPrivate(dir string) error {
	var created []string
	if os.Geteuid() == 0 {
		for d := filepath.Clean(dir); ; {
			if _, err := os.Lstat(d); err == nil {
				break
			}
			created = append(created, d)
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	if len(created) == 0 {
		return nil
	}
	fi, err := os.Stat(filepath.Dir(created[len(created)-1]))
	if err != nil {
		return nil
	}
	uid, gid, ok := nonRootOwner(fi)
	if !ok {
		return nil
	}
	// Outermost first; Lchown, so that a directory swapped for a symlink
	// meanwhile (its parent belongs to that user) gives away nothing else.
	for i := len(created) - 1; i >= 0; i-- {
		if err := os.Lchown(created[i], uid, gid); err != nil {
			return fmt.Errorf("give directory %s its owner %d:%d: %w", created[i], uid, gid, err)
		}
	}
	return nil
}

// WriteFile atomically replaces path with data, mode 0600. The parent
// directory is created 0700 if missing. Readers see either the old or the new
// content, never a partial file. A replaced file keeps its owner, and a new
// one gets its directory's, when this process may give it (root writing
// another user's file, e.g. a refresher run from root's crontab on the
// runner user's docker config).
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := MkdirPrivate(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", tmpName, err)
	}
	if err := keepOwner(tmp, path); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	ok = true
	return nil
}

// RemoveStaleTemps removes the temporary files WriteFile left for path
// (.<name>.tmp-*, from a writer killed before its rename) that were last
// modified more than olderThan ago, and returns how many it removed. Call it
// under the lock that serialises writers of path, so none is in progress.
func RemoveStaleTemps(path string, olderThan time.Duration) int {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+".tmp-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, de := range ents {
		if !strings.HasPrefix(de.Name(), prefix) || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil || time.Since(fi.ModTime()) < olderThan {
			continue
		}
		if os.Remove(filepath.Join(dir, de.Name())) == nil {
			removed++
		}
	}
	return removed
}

// keepOwner gives tmp the owner of the file it is about to replace, or, for
// a new file, of the directory it goes into, when that is not root and we are
// root (nobody else may chown): a refresher run from root's crontab on the
// runner user's config dir must leave files that user can still read.
func keepOwner(tmp *os.File, path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	// Lstat: the rename replaces a symlink itself, so the owner of
	// whatever it points at (root's file, another user's) is no guide.
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		// Nothing to replace (or it will fail at rename), or not a file
		// of its own: the directory's.
		if fi, err = os.Stat(filepath.Dir(path)); err != nil {
			return nil
		}
	}
	uid, gid, ok := nonRootOwner(fi)
	if !ok {
		return nil
	}
	if err := tmp.Chown(uid, gid); err != nil {
		return fmt.Errorf("give %s its owner %d:%d: %w", path, uid, gid, err)
	}
	return nil
}

// nonRootOwner returns fi's owner unless that is root:root.
func nonRootOwner(fi os.FileInfo) (uid, gid int, ok bool) {
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !isStat || (st.Uid == 0 && st.Gid == 0) {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// lockOwner gives a lock file the owner of its directory when we are root
// and that is someone else: the lock is shared with that user's processes,
// which must be able to open it.
func lockOwner(f *os.File, path string) {
	if os.Geteuid() != 0 {
		return
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return
	}
	uid, gid, ok := nonRootOwner(dir)
	if !ok {
		return
	}
	fi, err := f.Stat()
	if err != nil {
		return
	}
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !isStat || st.Nlink != 1 {
		// A hard link may be another name of any file on the file system
		// (a root-owned one planted by the directory's owner): never give
		// it away.
		return
	}
	if cur, _, isOwned := nonRootOwner(fi); isOwned && cur == uid {
		return
	}
	_ = f.Chown(uid, gid) // best effort: the lock works for us either way
}

// Lock is a held advisory lock. Unlock releases it.
type Lock struct{ f *os.File }

// ErrLockTimeout is returned by LockFile when ctx ends before the lock is had.
var ErrLockTimeout = errors.New("timed out waiting for lock")

// LockFile takes an exclusive flock on path (created 0600 if missing; run
// as root in another user's directory, the file is given to that user),
// waiting until it is free or ctx is done. The kernel releases the lock if the
// process dies, so a crashed holder never wedges the others. Taking the lock
// sets the file's modification time to now.
func LockFile(ctx context.Context, path string) (*Lock, error) {
	if err := MkdirPrivate(filepath.Dir(path)); err != nil {
		return nil, err
	}
	// O_NOFOLLOW: the directory may belong to another user (root writing
	// the runner's config dir), who must not be able to point the lock at a
	// file of root's choosing by planting a symlink.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("open lock file %s: it is a symbolic link, which tollgate never follows for a lock: remove it (%w)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("lock file %s is not a regular file: remove it", path)
	}
	lockOwner(f, path)
	delay := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// flock leaves the modification time alone: set it, so that a
			// lock file in use always looks recent to whoever removes old
			// ones by age (the token cache's sweep). Best effort. On the
			// open descriptor, so a link swapped in since is not followed;
			// by name where that needs /proc and it is not mounted.
			now := time.Now()
			tv := syscall.NsecToTimeval(now.UnixNano())
			if syscall.Futimes(int(f.Fd()), []syscall.Timeval{tv, tv}) != nil {
				_ = os.Chtimes(path, now, now)
			}
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w (%w)", path, ErrLockTimeout, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

// Unlock releases the lock. It is safe to call more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}

// CheckPrivate reports whether path (file or directory) can be read by users
// other than its owner, so callers can warn about secrets exposed to others.
func CheckPrivate(path string) (exposed bool, mode os.FileMode, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, 0, err
	}
	return fi.Mode().Perm()&0o077 != 0, fi.Mode().Perm(), nil
}
