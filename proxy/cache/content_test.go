package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// Content reads what the cache has, committed or being filled, for any
// repository, and never goes upstream or starts a fill.
func TestContentReadsCommittedOrFillingNeverUpstream(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 1<<20)
	d := u.add(data)
	c := openCache(t, t.TempDir(), Options{})
	ctx := context.Background()

	if _, err := c.Content(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Content of an unknown digest: %v, want ErrNotFound", err)
	}
	if g := u.gets.Load(); g != 0 {
		t.Fatalf("Content went upstream: %d GETs", g)
	}

	u.hold(100_000)
	owner, err := c.Fetch(ctx, host, repo, d, int64(len(data)), u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	filling, err := c.Content(ctx, d)
	if err != nil {
		t.Fatalf("Content during the fill: %v", err)
	}
	if filling.Cached() {
		t.Fatal("Content during the fill reported a committed file")
	}
	u.release()
	got, err := io.ReadAll(filling)
	filling.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Content during the fill: %d bytes, %v", len(got), err)
	}

	committed, err := c.Content(ctx, d)
	if err != nil {
		t.Fatalf("Content of committed content: %v", err)
	}
	if !committed.Cached() {
		t.Fatal("Content after the commit did not read the committed file")
	}
	got, err = io.ReadAll(committed)
	committed.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Content of committed content: %d bytes, %v", len(got), err)
	}
	if g := u.gets.Load(); g != 1 {
		t.Fatalf("upstream GETs = %d, want the fill's 1", g)
	}
	if c.Has(host, "other/repo", d) {
		t.Fatal("Content linked a repository")
	}
}
