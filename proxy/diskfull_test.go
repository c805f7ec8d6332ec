package proxy

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// smallFilesystem mounts a tmpfs of size bytes (root only) and returns its
// path; the test is skipped where it cannot be mounted.
func smallFilesystem(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small filesystem here (needs root): %v %s", err, out)
	}
	// Registered before the proxy starts, so it runs after the proxy's
	// cleanup has closed the cache.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDiskServesPastTheCache: when the cache's filesystem has no room
// for a blob (a CI host whose disk the images filled), the pull still works:
// the blob is streamed past the cache, verified, instead of every pull of it
// failing with a 502 until someone frees space.
func TestFullDiskServesPastTheCache(t *testing.T) {
	mnt := smallFilesystem(t, "256k")
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 1<<20, 1), nil)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, cacheDir: filepath.Join(mnt, "cache")})
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatalf("pull with the cache's disk full: %v", err)
	}
	d, _ := firstLayer(t, up, "team/app", "v1")
	if p.cache.Exists(d) {
		t.Fatal("a blob the disk had no room for is in the cache")
	}
}
