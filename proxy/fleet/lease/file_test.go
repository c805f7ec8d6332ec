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
