package proxy

import (
	"path/filepath"
	"testing"

	"github.com/spacelift-io/tollgate/internal/tmpfstest"
)

// TestFullDiskServesPastTheCache: when the cache's filesystem has no room
// for a blob (a CI host whose disk the images filled), the pull still works:
// the blob is streamed past the cache, verified, instead of every pull of it
// failing with a 502 until someone frees space.
func TestFullDiskServesPastTheCache(t *testing.T) {
	// Mounted before the proxy starts, so unmounted after its cleanup has
	// closed the cache.
	mnt := tmpfstest.Mount(t, "256k")
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
