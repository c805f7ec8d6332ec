package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Two hosts share a tier on distribution's filesystem driver.
func TestSharedTier(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 1<<20)
	d := u.add(data)
	u.setRepos(map[string]map[digest.Digest]bool{repo: {d: true}})
	sharedDir := t.TempDir()
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": sharedDir})
	if err != nil {
		t.Fatal(err)
	}
	hostA := openCache(t, t.TempDir(), Options{Shared: tier})
	hostB := openCache(t, t.TempDir(), Options{Shared: tier})

	fetchAll(t, hostA, u, d, data)
	waitFills(t, hostA) // includes the background upload
	if st := hostA.Stats(); st.SharedUploads != 1 || st.SharedErrors != 0 {
		t.Fatalf("host A stats %+v", st)
	}
	if n, err := tier.Stat(context.Background(), d); err != nil || n != int64(len(data)) {
		t.Fatalf("shared copy: %d, %v", n, err)
	}
	assertEmptyDir(t, filepath.Join(sharedDir, "tollgate", "uploads"))

	// Host B: the upstream is asked (HEAD) but nothing is downloaded from it.
	gets, heads := u.gets.Load(), u.heads.Load()
	fetchAll(t, hostB, u, d, data)
	waitFills(t, hostB)
	if u.gets.Load() != gets || u.heads.Load() != heads+1 {
		t.Fatalf("host B: GETs %d->%d, HEADs %d->%d; want no GET and one HEAD", gets, u.gets.Load(), heads, u.heads.Load())
	}
	if st := hostB.Stats(); st.SharedHits != 1 || st.BytesFromShared != int64(len(data)) || st.BytesFromUpstream != 0 || st.SharedUploads != 0 {
		t.Fatalf("host B stats %+v", st)
	}
	if !hostB.Has(host, repo, d) {
		t.Fatal("host B did not commit locally")
	}

	// A repository the upstream refuses gets nothing from the shared tier.
	hostC := openCache(t, t.TempDir(), Options{Shared: tier})
	if _, err := hostC.Fetch(context.Background(), host, "secret/app", d, -1, u.source("secret/app", d)); !errors.Is(err, errUpstreamStatus) {
		t.Fatalf("unauthorised repository via shared tier: %v", err)
	}

	// A corrupt shared copy is never committed, is deleted, and the next
	// fetch goes upstream.
	obj := filepath.Join(sharedDir, "tollgate", "blobs", "sha256", d.Encoded()[:2], d.Encoded())
	bad := append([]byte(nil), data...)
	bad[10] ^= 1
	if err := os.WriteFile(obj, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	// The fill can fail before Fetch has opened its reader (Fetch returns
	// the error) or after (the last Read does): either way it says why.
	r, err := hostC.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, ErrDigestMismatch) || !errors.Is(err, ErrFillFailed) {
		t.Fatalf("corrupt shared copy: %v", err)
	}
	waitFills(t, hostC)
	if hostC.Exists(d) {
		t.Fatal("corrupt shared copy committed")
	}
	if _, err := tier.Stat(context.Background(), d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("corrupt shared copy not deleted: %v", err)
	}
	gets = u.gets.Load()
	r, err = hostC.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) || u.gets.Load() != gets+1 {
		t.Fatalf("refetch after corrupt shared copy: %v", err)
	}
	waitFills(t, hostC) // re-uploads a good copy
	if n, err := tier.Stat(context.Background(), d); err != nil || n != int64(len(data)) {
		t.Fatalf("shared copy not restored: %d %v", n, err)
	}
}
