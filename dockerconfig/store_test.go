package dockerconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/internal/credsource"
	"github.com/spacelift-io/tollgate/internal/securefile"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

func newStore(t *testing.T, config string) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "docker")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &Store{Dir: dir, Self: "tollgate", Warnings: &bytes.Buffer{}}
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "")
	if _, _, err := s.Get(ctx, "reg.example.com"); !credsource.IsNotFound(err) {
		t.Fatalf("Get on no file: %v", err)
	}
	if err := s.Put(ctx, "https://reg.example.com/v2/", "alice", "pa:ss"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "docker.io", "<token>", "idtok"); err != nil {
		t.Fatal(err)
	}
	u, p, err := s.Get(ctx, "REG.example.com")
	if err != nil || u != "alice" || p != "pa:ss" {
		t.Fatalf("Get = %q %q %v", u, p, err)
	}
	u, p, err = s.Get(ctx, "https://index.docker.io/v1/")
	if err != nil || u != "<token>" || p != "idtok" {
		t.Fatalf("Get hub = %q %q %v", u, p, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list["reg.example.com"] != "alice" || list["https://index.docker.io/v1/"] != "<token>" {
		t.Fatalf("List = %v, %v", list, err)
	}
	fi, err := os.Stat(s.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, %v", fi.Mode(), err)
	}
	if err := s.Erase(ctx, "reg.example.com:443"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "reg.example.com"); !credsource.IsNotFound(err) {
		t.Fatalf("Get after erase: %v", err)
	}
	if err := s.Erase(ctx, "never.example.com"); err != nil {
		t.Fatalf("erasing a missing login: %v", err)
	}
	if buf := s.Warnings.(*bytes.Buffer); buf.Len() != 0 {
		t.Errorf("unexpected warnings: %s", buf)
	}
}

func TestNoConfigDir(t *testing.T) {
	s := &Store{Self: "tollgate"}
	if _, _, err := s.Get(context.Background(), "reg.example.com"); !credsource.IsNotFound(err) {
		t.Errorf("Get: %v", err)
	}
	err := s.Put(context.Background(), "reg.example.com", "u", "p")
	if !errors.Is(err, ErrNoConfigDir) || !strings.Contains(err.Error(), "export SPACELIFT_DOCKER_CONFIG_DIR=") {
		t.Errorf("Put: %v", err)
	}
	if l, err := s.List(context.Background()); err != nil || len(l) != 0 {
		t.Errorf("List: %v %v", l, err)
	}
	t.Setenv(EnvConfigDir, "/some/dir")
	t.Setenv(EnvHelperTimeout, "1500ms")
	s, err = FromEnv("tollgate")
	if dir, derr := DirFromEnv(); err != nil || derr != nil || dir != "/some/dir" || s.Dir != "/some/dir" || s.HelperTimeout != 1500*time.Millisecond || s.Self != "tollgate" {
		t.Errorf("FromEnv = %+v, %v", s, err)
	}
	t.Setenv(EnvHelperTimeout, "soon")
	if s, err := FromEnv("tollgate"); err != nil || s.HelperTimeout != 0 {
		t.Errorf("invalid timeout accepted: %v (%v)", s.HelperTimeout, err)
	}
}

// A relative SPACELIFT_DOCKER_CONFIG_DIR would be resolved against whatever
// directory the calling process runs in: refused, with what to do, and no
// Store to read or write logins with.
func TestRelativeConfigDirIsRefused(t *testing.T) {
	for _, rel := range []string{"docker", "./docker", "../etc/docker", "~/.docker", "."} {
		t.Setenv(EnvConfigDir, rel)
		dir, err := DirFromEnv()
		if !errors.Is(err, ErrRelativeConfigDir) || dir != rel {
			t.Errorf("%q: DirFromEnv = %q, %v", rel, dir, err)
			continue
		}
		for _, want := range []string{EnvConfigDir, "relative", fmt.Sprintf("%q", rel), "make it absolute", "export " + EnvConfigDir + "=/"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q: message %q does not say %q", rel, err, want)
			}
		}
		if s, err := FromEnv("tollgate"); !errors.Is(err, ErrRelativeConfigDir) || s != nil {
			t.Errorf("%q: FromEnv = %+v, %v", rel, s, err)
		}
	}
	for _, ok := range []string{"", "/etc/tollgate/docker"} {
		if err := CheckDir(ok); err != nil {
			t.Errorf("CheckDir(%q) = %v", ok, err)
		}
	}
}

func TestCorruptFileIsNeverOverwritten(t *testing.T) {
	ctx := context.Background()
	corrupt := "{\n\t\"auths\": {\n\t\t\"a.example.com\": {\"auth\": \"" + b64("a:b") + "\"}\n\t\n}\n"
	s := newStore(t, corrupt)
	for name, op := range map[string]func() error{
		"put":    func() error { return s.Put(ctx, "b.example.com", "u", "p") },
		"erase":  func() error { return s.Erase(ctx, "a.example.com") },
		"update": func() error { return s.Update(ctx, func(f *File) error { f.SetAuth("c", "u", "p"); return nil }) },
		"get":    func() error { _, _, err := s.Get(ctx, "a.example.com"); return err },
		"list":   func() error { _, err := s.List(ctx); return err },
	} {
		err := op()
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Path != s.Path() || pe.Line != 5 {
			t.Errorf("%s: err = %v, want a ParseError at line 5 of %s", name, err, s.Path())
		}
		if err != nil && strings.Contains(err.Error(), b64("a:b")) {
			t.Errorf("%s: error quotes the file: %v", name, err)
		}
	}
	got, _ := os.ReadFile(s.Path())
	if string(got) != corrupt {
		t.Fatalf("corrupt file was modified:\n%s", got)
	}
}

func TestPermissionWarningOncePerPath(t *testing.T) {
	s := newStore(t, `{"auths":{}}`)
	if err := os.Chmod(s.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := s.Get(context.Background(), "x.example.com"); !credsource.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	out := s.Warnings.(*bytes.Buffer).String()
	if strings.Count(out, "warning") != 1 || !strings.Contains(out, "chmod 600 "+s.Path()) || !strings.Contains(out, "0644") {
		t.Fatalf("warnings:\n%s", out)
	}
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, _ = s.Get(context.Background(), "x.example.com")
	out = s.Warnings.(*bytes.Buffer).String()
	if !strings.Contains(out, "chmod 700 "+s.Dir) {
		t.Fatalf("no directory warning:\n%s", out)
	}
	// A private store warns about nothing.
	p := newStore(t, `{}`)
	_, _, _ = p.Get(context.Background(), "x.example.com")
	if w := p.Warnings.(*bytes.Buffer).String(); w != "" {
		t.Errorf("private store warned: %s", w)
	}
}

func TestWriteWaitsForLock(t *testing.T) {
	s := newStore(t, "")
	s.LockTimeout = 100 * time.Millisecond
	l, err := securefile.LockFile(context.Background(), s.Path()+".lock")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Put(context.Background(), "a.example.com", "u", "p")
	if !errors.Is(err, securefile.ErrLockTimeout) {
		t.Fatalf("Put while locked: %v", err)
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Put wrote without the lock")
	}
	done := make(chan error, 1)
	s.LockTimeout = 5 * time.Second
	go func() { done <- s.Put(context.Background(), "a.example.com", "u", "p") }()
	// Unlock only once Put has the lock file open (a second descriptor on
	// it besides ours): it is then waiting for the lock, and must still be
	// waiting, not finished or failed, when the lock is freed.
	lockPath := s.Path() + ".lock"
	testwait.True(t, 5*time.Second, "Put opened "+lockPath, func() bool { return openCount(t, lockPath) >= 2 })
	select {
	case err := <-done:
		t.Fatalf("Put finished while the lock was held: %v", err)
	default:
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Put wrote while the lock was held")
	}
	_ = l.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// openCount is how many of this process's file descriptors are open on
// path.
func openCount(t *testing.T, path string) int {
	t.Helper()
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // as /proc shows it
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list open files (needs /proc): %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

func TestConcurrentPutsLoseNothing(t *testing.T) {
	s := newStore(t, `{"psFormat":"x"}`)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer has its own Store, so its own lock descriptor.
			w := &Store{Dir: s.Dir, Self: "tollgate"}
			if err := w.Put(context.Background(), fmt.Sprintf("r%d.example.com", i), "u", "p"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Keys()); n != 20 {
		t.Fatalf("%d entries, want 20", n)
	}
	if string(f.top["psFormat"]) != `"x"` {
		t.Error("unknown field lost")
	}
}

func TestSymlinkedConfigStaysSymlink(t *testing.T) {
	s := newStore(t, "")
	real := filepath.Join(t.TempDir(), "real.json")
	if err := os.WriteFile(real, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, s.Path()); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "a.example.com", "u", "p"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(s.Path()); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("symlink replaced by a file")
	}
	if data, _ := os.ReadFile(real); !strings.Contains(string(data), "a.example.com") {
		t.Fatalf("target not updated: %s", data)
	}
}

// TestNotFoundKeepsTheContract: a missing login, whether for want of a
// config dir or of an entry, is credsource's not-found error, which says so
// with the NotFound() marker that callers outside tollgate check.
func TestNotFoundKeepsTheContract(t *testing.T) {
	s := newStore(t, `{"auths": {"other.example.com": {"auth": "dTpw"}}}`)
	for name, store := range map[string]*Store{"no config dir": {}, "no entry": s} {
		_, _, err := store.Get(context.Background(), "x.example.com")
		var nf interface{ NotFound() }
		if !errors.As(err, &nf) || !errors.Is(err, credsource.ErrNotFound) {
			t.Errorf("%s: %v does not keep the not-found contract", name, err)
		}
	}
}

func TestStoreRefusesCallersOwnConfig(t *testing.T) {
	s := newStore(t, `{"credsStore": "tollgate"}`)
	t.Setenv("DOCKER_CONFIG", s.Dir)
	before, _ := os.ReadFile(s.Path())
	err := s.Put(context.Background(), "a.example.com", "u", "p")
	if !errors.Is(err, ErrSharedConfig) || !strings.Contains(err.Error(), "point SPACELIFT_DOCKER_CONFIG_DIR at a separate directory") {
		t.Fatalf("Put into the caller's own config: %v", err)
	}
	if after, _ := os.ReadFile(s.Path()); string(after) != string(before) {
		t.Fatal("file changed")
	}
	// Another client config dir: fine.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if err := s.Put(context.Background(), "a.example.com", "u", "p"); err != nil {
		t.Fatal(err)
	}
	// Same dir, but the file does not name tollgate: docker writes auths
	// itself and never runs tollgate's store, so nothing to refuse.
	s2 := newStore(t, `{}`)
	t.Setenv("DOCKER_CONFIG", s2.Dir)
	if err := s2.Put(context.Background(), "a.example.com", "u", "p"); err != nil {
		t.Fatal(err)
	}
}

// Root editing the config of another user (tollgate refresh from root's
// crontab) must not write through a symlink that user planted to a file the
// user does not own (root's docker config, /etc/docker/daemon.json): the
// edit is refused with the reason, and that file is left as it was. A link
// to a file of the same user is followed, as for anyone.
func TestRootDoesNotWriteThroughAnotherUsersSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the case is root writing another user's config")
	}
	base := t.TempDir()
	victim := filepath.Join(base, "daemon.json")
	if err := os.WriteFile(victim, []byte(`{"debug":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "docker")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	set := func(f *File) error { f.SetAuth("a.example.com", "u", "p"); return nil }
	err := Edit(context.Background(), path, time.Second, set)
	if err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Edit through another user's symlink: %v, want a refusal naming the symlink", err)
	}
	if data, _ := os.ReadFile(victim); string(data) != `{"debug":true}` {
		t.Fatalf("root's file was written through the user's symlink: %s", data)
	}
	// The same user's own file behind the link is fine.
	if err := os.Chown(victim, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	if err := Edit(context.Background(), path, time.Second, set); err != nil {
		t.Fatalf("Edit through a symlink to the user's own file: %v", err)
	}
	if data, _ := os.ReadFile(victim); !strings.Contains(string(data), "a.example.com") {
		t.Fatalf("target not updated: %s", data)
	}
}

// A writer killed between creating its temporary file and renaming it
// leaves a copy of every login behind (.config.json.tmp-*), which a later
// docker logout would not erase. The next write, under the lock, removes
// such leftovers once they are old, and leaves a young one alone.
func TestWriteRemovesTempFilesOfCrashedWriters(t *testing.T) {
	s := newStore(t, `{"auths":{}}`)
	stale := filepath.Join(s.Dir, ".config.json.tmp-1234")
	young := filepath.Join(s.Dir, ".config.json.tmp-5678")
	other := filepath.Join(s.Dir, ".other.json.tmp-1")
	for _, p := range []string{stale, young, other} {
		if err := os.WriteFile(p, []byte(`{"auths":{"r.example.com":{"auth":"c2VjcmV0OnB3"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{stale, other} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(context.Background(), "a.example.com", "u", "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file left behind (err %v)", err)
	}
	for _, p := range []string{young, other} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}
}
