package tmpfstest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The mount is as small as asked: a write past its size fails with ENOSPC.
func TestMountIsSmall(t *testing.T) {
	dir := Mount(t, "64k")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("mount point mode %v, want 0700", fi.Mode().Perm())
	}
	err = os.WriteFile(filepath.Join(dir, "big"), make([]byte, 256<<10), 0o600)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 256 KiB to a 64 KiB tmpfs: %v, want ENOSPC", err)
	}
}
