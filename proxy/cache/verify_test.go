package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
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

// TestTruncatedCachedFileIsNotServedAsComplete: a committed file found
// shorter than its content (cut on disk after it was verified) must not end
// with a clean EOF, through Read or WriteTo; the entry is dropped so that
// the next fetch downloads it again instead of failing every pull until an
// operator runs Verify.
func TestTruncatedCachedFileIsNotServedAsComplete(t *testing.T) {
	for _, via := range []string{"Read", "WriteTo"} {
		t.Run(via, func(t *testing.T) {
			u := newUpstream(t)
			data := randomBytes(t, 200<<10)
			d := u.add(data)
			c := openCache(t, t.TempDir(), Options{})
			fetchAll(t, c, u, d, data)
			if err := os.Truncate(c.blobPath(d), 100<<10); err != nil {
				t.Fatal(err)
			}
			r, err := c.Blob(context.Background(), host, repo, d)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			if via == "Read" {
				got, err = io.ReadAll(struct{ io.Reader }{r})
			} else {
				var buf bytes.Buffer
				_, err = r.WriteTo(&buf)
				got = buf.Bytes()
			}
			r.Close()
			if err == nil {
				t.Fatalf("truncated cached file served as complete: %d of %d bytes and no error", len(got), len(data))
			}
			if !errors.Is(err, ErrSizeMismatch) {
				t.Fatalf("error %v, want ErrSizeMismatch", err)
			}
			if c.Exists(d) {
				t.Fatal("damaged entry still in the index")
			}
			// The next fetch downloads it again.
			fetchAll(t, c, u, d, data)
			if g := u.gets.Load(); g != 2 {
				t.Fatalf("upstream GETs = %d, want 2", g)
			}
		})
	}
}
