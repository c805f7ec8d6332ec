package securefile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestWriteFileModesAndReplace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	p := filepath.Join(dir, "secret.json")
	if err := WriteFile(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
	exposed, _, err := CheckPrivate(p)
	if err != nil || exposed {
		t.Errorf("CheckPrivate = %v, %v", exposed, err)
	}
}

func TestLockFileExcludesAndTimesOut(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	l, err := LockFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := LockFile(ctx, p); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("second lock: %v, want ErrLockTimeout", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	// Counter incremented under the lock by many goroutines, each with its
	// own file descriptor (flock is per open file description).
	counter := filepath.Join(t.TempDir(), "n")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := LockFile(context.Background(), p)
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Unlock()
			b, _ := os.ReadFile(counter)
			if err := WriteFile(counter, append(b, 'x')); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(counter)
	if len(b) != 20 {
		t.Fatalf("lost updates: %d of 20", len(b))
	}
}

func TestWriteFileKeepsOwnerOfReplacedFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can give a file to another user")
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte(`{"auths":{}}`)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1983 || st.Gid != 1983 {
		t.Fatalf("owner %d:%d after replace, want 1983:1983", st.Uid, st.Gid)
	}
	// A new file is the writer's own.
	q := filepath.Join(filepath.Dir(p), "new.json")
	if err := WriteFile(q, []byte("x")); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(q)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
		t.Fatalf("new file owned by %d, want 0", st.Uid)
	}
}

// Root writing into another user's directory (tollgate refresh from root's
// crontab on the runner's config dir, for the first time) must leave files
// that user can read and lock: a root-owned 0600 config.json or
// config.json.lock would lock the runner's helper out of its own logins.
func TestRootCreatesFilesForTheDirectoryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can give a file to another user")
	}
	dir := filepath.Join(t.TempDir(), "docker")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.json")
	// A lock file a root run without this fix left behind is handed over too.
	if err := os.WriteFile(p+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := LockFile(context.Background(), p+".lock")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = l.Unlock()
	for _, f := range []string{p, p + ".lock"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1983 || st.Gid != 1983 {
			t.Errorf("%s owned by %d:%d, want the directory's owner 1983:1983", filepath.Base(f), st.Uid, st.Gid)
		}
	}
}

// A user who owns the directory root writes into (the runner's docker config
// dir, refreshed from root's crontab) must not be able to make root hand them
// another file: a lock file planted as a symlink, or as a hard link, to a
// root-owned file is refused or left alone, never given to the user.
func TestRootLockFileDoesNotGiveAwayPlantedLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can give a file to another user")
	}
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "docker")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	sym := filepath.Join(dir, "config.json.lock")
	if err := os.Symlink(victim, sym); err != nil {
		t.Fatal(err)
	}
	if l, err := LockFile(context.Background(), sym); err == nil {
		_ = l.Unlock()
		t.Error("LockFile followed a symlinked lock file")
	} else if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error %q does not say the lock file is a symbolic link", err)
	}
	hard := filepath.Join(dir, "other.lock")
	if err := os.Link(victim, hard); err != nil {
		t.Fatal(err)
	}
	if l, err := LockFile(context.Background(), hard); err == nil {
		_ = l.Unlock()
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
		t.Fatalf("root's file was given to %d:%d through a planted lock file", st.Uid, st.Gid)
	}
}

// A file that is a symlink is replaced by the rename, not written through:
// the new file's owner is the directory's, not that of whatever the link
// points at (another user's file, or root's).
func TestRootReplacingSymlinkTakesTheDirectoryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can give a file to another user")
	}
	base := t.TempDir()
	elsewhere := filepath.Join(base, "elsewhere")
	if err := os.WriteFile(elsewhere, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(elsewhere, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "cache")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "entry.json")
	if err := os.Symlink(elsewhere, p); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte(`{"secret":1}`)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Fatalf("%s is %v after the write, want a regular file", p, fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1983 || st.Gid != 1983 {
		t.Errorf("replaced symlink is owned by %d:%d, want the directory's owner 1983:1983", st.Uid, st.Gid)
	}
	if b, _ := os.ReadFile(elsewhere); string(b) != "{}" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}

// Root writing below another user's directory (a token cache or docker config
// dir of the runner user whose subdirectory does not exist yet) creates the
// missing directories for that user too: a root-owned 0700 directory would
// lock the user out of everything in it.
func TestRootCreatesMissingDirectoriesForTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root can give a file to another user")
	}
	base := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(base, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(base, "cache", "tollgate", "ecr", "entry.json")
	if err := WriteFile(p, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	l, err := LockFile(context.Background(), filepath.Join(base, "docker", "config.json.lock"))
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Unlock()
	for _, rel := range []string{"cache", "cache/tollgate", "cache/tollgate/ecr", "cache/tollgate/ecr/entry.json", "docker", "docker/config.json.lock"} {
		fi, err := os.Lstat(filepath.Join(base, rel))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1983 || st.Gid != 1983 {
			t.Errorf("%s owned by %d:%d, want 1983:1983 (the owner of the directory it was created in)", rel, st.Uid, st.Gid)
		}
		if fi.IsDir() && fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", rel, fi.Mode().Perm())
		}
	}
}

// Taking a lock marks its file as in use (modification time now), so that a
// sweep of old files never removes a held lock.
func TestLockFileTouchesModificationTime(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	l, err := LockFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(fi.ModTime()); age > time.Hour {
		t.Fatalf("held lock file looks %v old", age.Round(time.Hour))
	}
}
