package cache

import (
	"context"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestVerifyRemovesDamagedContent(t *testing.T) {
	u := newUpstream(t)
	c := openCache(t, t.TempDir(), Options{})
	var ds []digest.Digest
	for range 3 {
		b := randomBytes(t, 50<<10)
		d := u.add(b)
		ds = append(ds, d)
		fetchAll(t, c, u, d, b)
	}
	// Damage one file in place (same size), as a bad disk would.
	p := c.blobPath(ds[1])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	checked, removed, err := c.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if checked != 3 || len(removed) != 1 || removed[0] != ds[1] {
		t.Fatalf("checked %d, removed %v; want 3 and [%s]", checked, removed, ds[1])
	}
	if c.Has(host, repo, ds[1]) || !c.Has(host, repo, ds[0]) || !c.Has(host, repo, ds[2]) {
		t.Fatal("wrong entries after Verify")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("damaged file still on disk")
	}
}
