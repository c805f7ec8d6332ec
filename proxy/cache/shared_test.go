package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// hungTier is a real shared tier (distribution's filesystem driver) whose
// Stat or Open hangs, as on an NFS mount whose server went away: the call
// blocks in the kernel and ignores its context. It returns when the test
// ends.
type hungTier struct {
	SharedTier
	hang  string // "stat" or "open"
	until chan struct{}
}

func (h *hungTier) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if h.hang == "stat" {
		<-h.until
	}
	return h.SharedTier.Stat(ctx, d)
}

func (h *hungTier) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	if h.hang == "open" {
		<-h.until
	}
	return h.SharedTier.Open(ctx, d)
}

// TestHungSharedTierGoesUpstream: a shared tier that is down or hangs must
// send the fill to the upstream after Options.SharedTimeout, not hold it
// until the fill's idle timeout fails the client's pull.
func TestHungSharedTierGoesUpstream(t *testing.T) {
	for _, hang := range []string{"stat", "open"} {
		t.Run(hang, func(t *testing.T) {
			u := newUpstream(t)
			data := randomBytes(t, 256<<10)
			d := u.add(data)
			sharedDir := t.TempDir()
			tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": sharedDir})
			if err != nil {
				t.Fatal(err)
			}
			// The tier has the blob, so only a hang keeps the fill from it.
			if err := tier.Put(context.Background(), d, int64(len(data)), bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			until := make(chan struct{})
			hung := &hungTier{SharedTier: tier, hang: hang, until: until}
			c := openCache(t, t.TempDir(), Options{Shared: hung, SharedTimeout: 100 * time.Millisecond, FillIdleTimeout: 2 * time.Second})
			t.Cleanup(func() { close(until) }) // runs before the cache's Close
			r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
			if err != nil {
				t.Fatalf("fetch with a hung shared tier: %v", err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read with a hung shared tier: %v", err)
			}
			if u.gets.Load() != 1 {
				t.Fatalf("upstream GETs = %d, want 1", u.gets.Load())
			}
			if st := c.Stats(); st.SharedHits != 0 || st.BytesFromUpstream != int64(len(data)) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
