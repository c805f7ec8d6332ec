package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

// Close lets a fill in progress finish (graceful shutdown) ...
func TestCloseWaitsForFill(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 512<<10)
	d := u.add(data)
	u.hold(1000)
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the only client left
	closed := make(chan error)
	go func() { closed <- c.Close(context.Background()) }()
	// Close has begun once Fetch refuses; until the fill is released it
	// must not return.
	testwait.Eventually(t, 10*time.Second, func() error {
		select {
		case err := <-closed:
			t.Fatalf("Close returned before the fill finished: %v", err)
		default:
		}
		r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err == nil {
			r.Close()
		}
		return fmt.Errorf("Fetch after Close: %v, want ErrClosed", err)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned before the fill finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	u.release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	c2 := openCache(t, dir, Options{})
	got, err := c2.Blob(context.Background(), host, repo, d)
	if err != nil {
		t.Fatalf("fill did not commit during Close: %v", err)
	}
	defer got.Close()
	if b, _ := io.ReadAll(got); !bytes.Equal(b, data) {
		t.Fatal("wrong content")
	}
}

// ... until its context ends, then cancels it and keeps nothing partial.
func TestCloseCancelsFillAfterDeadline(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 512<<10)
	d := u.add(data)
	u.hold(1000)
	t.Cleanup(u.release)
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, ErrFillFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("reader of a cancelled fill: %v", err)
	}
	assertEmptyDir(t, filepath.Join(dir, "tmp"))
	c2 := openCache(t, dir, Options{})
	if c2.Exists(d) {
		t.Fatal("cancelled fill committed")
	}
}

// Without a Check, a repository is confirmed by opening (and closing) the
// upstream GET; sha512 digests fill like sha256.
func TestCheckFallsBackToOpenAndSHA512(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 100<<10)
	d := digest.SHA512.FromBytes(data)
	u.mu.Lock()
	u.blobs[d] = data
	u.mu.Unlock()
	c := openCache(t, t.TempDir(), Options{})
	src := u.source(repo, d)
	src.Check = nil
	r, err := c.Fetch(context.Background(), host, repo, d, int64(len(data)), src)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("sha512 fill: %v", err)
	}
	r.Close()
	waitFills(t, c)

	other := u.source("other/app", d)
	other.Check = nil
	if _, err := c.Fetch(context.Background(), host, "other/app", d, -1, other); err != nil {
		t.Fatal(err) // the test upstream serves every repository by default
	}
	if !c.Has(host, "other/app", d) {
		t.Fatal("not linked after the Open check")
	}
	if u.gets.Load() != 2 {
		t.Fatalf("GETs = %d, want 2 (fill + check)", u.gets.Load())
	}
	if st := c.Stats(); st.Misses != 1 || st.BytesFromUpstream != int64(len(data)) {
		t.Fatalf("the check downloaded the blob again: %+v", st)
	}
}

// The empty blob (some images have one) fills, verifies and survives a
// restart, although an empty content file is otherwise treated as damage.
func TestEmptyBlob(t *testing.T) {
	u := newUpstream(t)
	d := u.add([]byte{})
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	r, err := c.Fetch(context.Background(), host, repo, d, 0, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("empty blob: %d bytes, %v", len(b), err)
	}
	r.Close()
	waitFills(t, c)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2 := openCache(t, dir, Options{})
	if n, ok := c2.Stat(host, repo, d); !ok || n != 0 {
		t.Fatalf("empty blob after restart: %d %v", n, ok)
	}
}
