package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Admit and AdmitManifest give a repository content cached for another
// only after its own upstream check said yes, and never ask the upstream
// about content the cache does not hold.
func TestAdmitNeedsTheRepositorysOwnProof(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 64<<10)
	d := u.add(data)
	c := openCache(t, t.TempDir(), Options{})
	ctx := context.Background()
	const other = "other/app"
	refused := errors.New("403 from the upstream")
	checks := 0
	refuse := func(context.Context) error { checks++; return refused }
	allow := func(context.Context) error { checks++; return nil }

	if _, err := c.Admit(ctx, host, other, d, allow); !errors.Is(err, ErrNotFound) || checks != 0 {
		t.Fatalf("Admit of uncached content: %v after %d checks, want ErrNotFound and no check", err, checks)
	}
	fetchAll(t, c, u, d, data) // cached for repo
	if _, err := c.Admit(ctx, host, other, d, refuse); !errors.Is(err, refused) || checks != 1 {
		t.Fatalf("Admit refused upstream: %v after %d checks, want the upstream's error", err, checks)
	}
	if c.Has(host, other, d) {
		t.Fatal("a refused repository was linked")
	}
	n, err := c.Admit(ctx, host, other, d, allow)
	if err != nil || n != int64(len(data)) || checks != 2 || !c.Has(host, other, d) {
		t.Fatalf("Admit allowed upstream: size %d, %v after %d checks, linked %v", n, err, checks, c.Has(host, other, d))
	}
	if _, err := c.Admit(ctx, host, other, d, refuse); err != nil || checks != 2 {
		t.Fatalf("Admit of a linked repository asked the upstream again (%d checks): %v", checks, err)
	}

	m := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `"}`)
	md := digest.FromBytes(m)
	typed := func(mt string, err error) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { checks++; return mt, err }
	}
	checks = 0
	if err := c.AdmitManifest(ctx, host, other, md, typed("", nil)); !errors.Is(err, ErrNotFound) || checks != 0 {
		t.Fatalf("AdmitManifest of an uncached manifest: %v after %d checks", err, checks)
	}
	if err := c.PutManifest(host, repo, md, ociManifest, m); err != nil {
		t.Fatal(err)
	}
	if err := c.AdmitManifest(ctx, host, other, md, typed("", refused)); !errors.Is(err, refused) {
		t.Fatalf("AdmitManifest refused upstream: %v", err)
	}
	if _, err := c.GetManifest(host, other, md); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused repository reads the manifest: %v", err)
	}
	if err := c.AdmitManifest(ctx, host, other, md, typed("", nil)); err != nil {
		t.Fatalf("AdmitManifest allowed upstream: %v", err)
	}
	got, err := c.GetManifest(host, other, md)
	if err != nil || got.MediaType != ociManifest {
		t.Fatalf("admitted manifest: %+v, %v (want the stored media type)", got, err)
	}
}
