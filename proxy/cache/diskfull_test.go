package cache

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/spacelift-io/tollgate/internal/tmpfstest"
)

// TestFullDiskFailsBeforeAnyByte: a fill whose blob does not fit on the
// cache's filesystem fails with ErrNoSpace before a byte reaches a client
// (so that the proxy can serve it past the cache), leaving nothing behind.
func TestFullDiskFailsBeforeAnyByte(t *testing.T) {
	mnt := tmpfstest.Mount(t, "256k")
	u := newUpstream(t)
	data := randomBytes(t, 1<<20)
	d := u.add(data)
	c := openCache(t, filepath.Join(mnt, "cache"), Options{})
	r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err == nil {
		r.Close()
		t.Fatal("fetch of a blob larger than the free space opened a reader")
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("fetch with a full disk: %v, want ErrNoSpace", err)
	}
	waitFills(t, c)
	assertEmptyDir(t, filepath.Join(mnt, "cache", "tmp"))
	if c.Exists(d) {
		t.Fatal("content visible after a failed fill")
	}
	// What fits is still cached.
	small := randomBytes(t, 10<<10)
	fetchAll(t, c, u, u.add(small), small)
}
