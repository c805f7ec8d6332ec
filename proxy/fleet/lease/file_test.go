package lease_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// TestFile runs the lease behaviour on a filesystem shared tier (here a
// local directory; in production a path on NFS or EFS that every host
// mounts).
func TestFile(t *testing.T) {
	root := t.TempDir()
	testStore(t, engine{
		open: func(t *testing.T, ns string) lease.Store {
			s, err := lease.Open(context.Background(), "", ns, "filesystem", map[string]any{"rootdirectory": root})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		// File mtimes are exact here, but keep the engines' margin visible.
		ttl: 2 * time.Second,
	})
	// Everything it wrote is private to this user.
	filepath.WalkDir(filepath.Join(root, "tollgate"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		fi, _ := d.Info()
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %04o, want no group or other access", p, fi.Mode().Perm())
		}
		return nil
	})
}

// TestFileUnusable: a rootdirectory that is not a directory is an engine
// error, not ErrHeld.
func TestFileUnusable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(root, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := lease.Open(context.Background(), "", "ns", "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(context.Background(), "sha256:x", "http://h", time.Minute); err == nil || errors.Is(err, lease.ErrHeld) {
		t.Errorf("Acquire under a file: %v, want an engine error", err)
	}
}

// TestFileRenewalsKeepFewFiles: a lease renewed many times (a fleet
// member record lives for days) keeps a few generation files, not one per
// renewal; a writer acting on a generation that was removed since is still
// refused, and the holder's lease is untouched.
func TestFileRenewalsKeepFewFiles(t *testing.T) {
	root := t.TempDir()
	open := func() lease.Store {
		s, err := lease.Open(context.Background(), "", "ns", "filesystem", map[string]any{"rootdirectory": root})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open(), open()
	ctx := ctxFor(t, 30*time.Second)
	const key = "member-long"
	dir := filepath.Join(root, "tollgate", "leases", "v1", "ns", key)
	generations := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(dir, "g*"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first, err := a.Acquire(ctx, key, holderURL(1), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l := first
	for i := 0; i < 20; i++ {
		if l, err = a.Renew(ctx, l, time.Minute); err != nil {
			t.Fatalf("renew %d: %v", i, err)
		}
	}
	if g := generations(); len(g) > 3 {
		t.Errorf("after 20 renewals %d generation files are kept: %v", len(g), g)
	}
	// The first lease's next generation was removed long ago.
	if _, err := a.Renew(ctx, first, time.Minute); !errors.Is(err, lease.ErrLost) {
		t.Errorf("renewing from a removed generation: %v, want ErrLost", err)
	}
	if err := a.Release(ctx, first); !errors.Is(err, lease.ErrLost) {
		t.Errorf("releasing from a removed generation: %v, want ErrLost", err)
	}
	theirs, err := b.Acquire(ctx, key, holderURL(2), time.Minute)
	if !errors.Is(err, lease.ErrHeld) || theirs.Holder != holderURL(1) {
		t.Errorf("acquire after the stale writes: (%+v, %v), want the holder's lease, ErrHeld", theirs, err)
	}
	if l, err = a.Renew(ctx, l, time.Minute); err != nil {
		t.Errorf("the holder's renewal after the stale writes: %v", err)
	}
	if err := a.Release(ctx, l); err != nil {
		t.Errorf("release: %v", err)
	}
	if g := generations(); len(g) > 3 {
		t.Errorf("after the release %d generation files are kept: %v", len(g), g)
	}
	if _, err := b.Acquire(ctx, key, holderURL(2), time.Minute); err != nil {
		t.Errorf("acquire after release: %v", err)
	}
}
