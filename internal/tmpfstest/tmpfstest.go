package tmpfstest

import (
	"os"
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of size (as mount(8) reads it: "256k", "1m") with
// mode 0700 on a new temporary directory and returns its path; t's cleanup
// unmounts it. Only root can mount: other users' tests are skipped, but as
// root a failure to mount fails the test, so that a CI run (as root) can
// never pass by skipping it.
//
// The unmount is registered now, so it runs after the cleanups registered
// later (a cache or server opened on the mount is closed first).
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "cannot mount a " + size + " tmpfs on " + dir + ": " + err.Error() + " " + string(out)
		if os.Geteuid() != 0 {
			t.Skip(msg + " (mounting needs root)")
		}
		t.Fatal(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}
