package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

const (
	host = "registry.example.com"
	repo = "team/app"
)

func TestConcurrentFetchSingleFlight(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 3<<20)
	d := u.add(data)
	u.hold(1024)
	c := openCache(t, t.TempDir(), Options{})

	const n = 20
	readers := make([]*Reader, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readers[i], errs[i] = c.Fetch(context.Background(), host, repo, d, int64(len(data)), u.source(repo, d))
		}()
	}
	wg.Wait() // every Fetch returned while the upstream is held at 1 KiB
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	u.release()
	got := make([][]byte, n)
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			got[i], errs[i] = io.ReadAll(r)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], data) {
			t.Fatalf("reader %d: got %d bytes, wrong content", i, len(got[i]))
		}
	}
	if g := u.gets.Load(); g != 1 {
		t.Fatalf("upstream GETs = %d, want 1", g)
	}
	st := c.Stats()
	if st.Misses != 1 || st.Joins != n-1 || st.BytesFromUpstream != int64(len(data)) {
		t.Fatalf("stats = %+v", st)
	}
	if !c.Has(host, repo, d) {
		t.Fatal("blob not committed")
	}
}

func TestStreamsBeforeComplete(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 1<<20)
	d := u.add(data)
	u.hold(100_000)
	c := openCache(t, t.TempDir(), Options{})

	r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Cached() {
		t.Fatal("cold fetch reported as cached")
	}
	if r.Size() != int64(len(data)) {
		t.Fatalf("size = %d, want the upstream's Content-Length %d", r.Size(), len(data))
	}
	// The upstream is held after 100000 bytes: all of them must be readable now.
	first := make([]byte, 100_000)
	if _, err := io.ReadFull(r, first); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, data[:100_000]) {
		t.Fatal("first bytes differ")
	}
	if c.Has(host, repo, d) {
		t.Fatal("blob visible before it was complete")
	}
	u.release()
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(first, rest...), data) {
		t.Fatal("content differs")
	}
}

func TestClientCancelDoesNotAbortFill(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 2<<20)
	d := u.add(data)
	u.hold(4096)
	c := openCache(t, t.TempDir(), Options{})

	ctx, cancel := context.WithCancel(context.Background())
	r, err := c.Fetch(ctx, host, repo, d, int64(len(data)), u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	cancel() // the client hangs up mid-blob
	if _, err := r.Read(buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v, want context.Canceled", err)
	}
	r.Close()
	u.release()
	waitFills(t, c)

	hit, err := c.Blob(context.Background(), host, repo, d)
	if err != nil {
		t.Fatalf("fill did not commit after the client left: %v", err)
	}
	defer hit.Close()
	got, err := io.ReadAll(hit)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cached content wrong (err %v)", err)
	}
	if g := u.gets.Load(); g != 1 {
		t.Fatalf("upstream GETs = %d, want 1", g)
	}
}

func TestBadUpstreamNeverCommitted(t *testing.T) {
	for _, tc := range []struct {
		fault string
		want  error
	}{
		{"corrupt", ErrDigestMismatch},
		{"truncate", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			u := newUpstream(t)
			data := randomBytes(t, 1<<20)
			d := u.add(data)
			u.setFault(tc.fault)
			u.hold(1000) // both readers join before the fill can fail
			dir := t.TempDir()
			c := openCache(t, dir, Options{})

			// Two readers: one reads to the end, one reads exactly Size bytes
			// as http.ServeContent does; neither may see a clean end.
			r1, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
			if err != nil {
				t.Fatal(err)
			}
			r2, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
			if err != nil {
				t.Fatal(err)
			}
			u.release()
			got, err := io.ReadAll(r1)
			if !errors.Is(err, ErrFillFailed) || !errors.Is(err, tc.want) {
				t.Fatalf("ReadAll error = %v, want ErrFillFailed and %v", err, tc.want)
			}
			if len(got) >= len(data) {
				t.Fatalf("reader got all %d bytes of a bad blob", len(got))
			}
			n, err := io.CopyN(io.Discard, r2, int64(len(data)))
			if err == nil || n == int64(len(data)) {
				t.Fatalf("CopyN of Size bytes succeeded (%d bytes, %v)", n, err)
			}
			r1.Close()
			r2.Close()
			waitFills(t, c)

			if c.Has(host, repo, d) || c.Exists(d) {
				t.Fatal("bad content is in the cache")
			}
			if _, err := c.Blob(context.Background(), host, repo, d); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Blob: %v, want ErrNotFound", err)
			}
			assertEmptyDir(t, filepath.Join(dir, "tmp"))
			if _, err := os.Stat(c.blobPath(d)); !os.IsNotExist(err) {
				t.Fatalf("content file exists: %v", err)
			}
			if c.Stats().FillErrors != 1 {
				t.Fatalf("FillErrors = %d, want 1", c.Stats().FillErrors)
			}

			// A later fetch from a healthy upstream fills normally.
			u.setFault("")
			r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("refetch: %v", err)
			}
		})
	}
}

func TestAnnouncedSizeMismatch(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 1000)
	d := u.add(data)
	c := openCache(t, t.TempDir(), Options{})
	// The caller expects 999 bytes; the upstream announces 1000.
	_, err := c.Fetch(context.Background(), host, repo, d, 999, u.source(repo, d))
	if !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("err = %v, want ErrSizeMismatch", err)
	}
	if c.Exists(d) {
		t.Fatal("committed despite size mismatch")
	}
}

func TestIdleTimeout(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 1000)
	d := u.add(data)
	u.setFault("stall")
	dir := t.TempDir()
	c := openCache(t, dir, Options{FillIdleTimeout: 200 * time.Millisecond})
	r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = io.ReadAll(r)
	if !errors.Is(err, ErrIdleTimeout) || !errors.Is(err, ErrFillFailed) {
		t.Fatalf("err = %v, want ErrIdleTimeout", err)
	}
	waitFills(t, c)
	if c.Exists(d) {
		t.Fatal("stalled fill committed")
	}
	assertEmptyDir(t, filepath.Join(dir, "tmp"))
}

func TestUpstreamErrorReturnedByFetch(t *testing.T) {
	u := newUpstream(t)
	c := openCache(t, t.TempDir(), Options{})
	d := digest.FromString("nobody has this")
	_, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if !errors.Is(err, errUpstreamStatus) {
		t.Fatalf("err = %v, want the upstream's error", err)
	}
	if c.Exists(d) || c.Stats().Inflight != 0 {
		t.Fatal("failed open left state behind")
	}
}

func TestRepositoryScoping(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 64<<10)
	d := u.add(data)
	u.setRepos(map[string]map[digest.Digest]bool{"team/app": {d: true}, "other/app": {d: true}})
	c := openCache(t, t.TempDir(), Options{})
	ctx := context.Background()

	r, err := c.Fetch(ctx, host, "team/app", d, -1, u.source("team/app", d))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	waitFills(t, c)

	// Knowing the digest is not enough.
	for _, s := range []struct{ host, repo string }{{host, "secret/app"}, {"other.example.com", "team/app"}} {
		if c.Has(s.host, s.repo, d) {
			t.Fatalf("%s/%s has a blob it never fetched", s.host, s.repo)
		}
		if _, err := c.Blob(ctx, s.host, s.repo, d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Blob through %s/%s: %v", s.host, s.repo, err)
		}
	}
	// A repository the upstream refuses: Fetch asks (HEAD) and fails, no GET.
	gets := u.gets.Load()
	if _, err := c.Fetch(ctx, host, "secret/app", d, -1, u.source("secret/app", d)); !errors.Is(err, errUpstreamStatus) {
		t.Fatalf("fetch through unauthorised repository: %v", err)
	}
	if c.Has(host, "secret/app", d) || u.gets.Load() != gets {
		t.Fatal("unauthorised repository got linked or downloaded")
	}
	// A repository the upstream confirms: HEAD, link, served from cache.
	heads := u.heads.Load()
	r, err = c.Fetch(ctx, host, "other/app", d, -1, u.source("other/app", d))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !r.Cached() || !bytes.Equal(got, data) {
		t.Fatal("confirmed repository not served from cache")
	}
	if u.heads.Load() != heads+1 || u.gets.Load() != gets {
		t.Fatalf("want exactly one HEAD and no GET (heads %d->%d, gets %d->%d)", heads, u.heads.Load(), gets, u.gets.Load())
	}
	if !c.Has(host, "other/app", d) {
		t.Fatal("not linked after check")
	}
	// Link directly (the proxy's HEAD path) and the error for unknown content.
	if err := c.Link(host, "third/app", d); err != nil || !c.Has(host, "third/app", d) {
		t.Fatalf("Link: %v", err)
	}
	if err := c.Link(host, "third/app", digest.FromString("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Link of unknown digest: %v", err)
	}
	// Invalid names are refused, never turned into paths.
	for _, bad := range []struct{ host, repo string }{
		{"../etc", "a"}, {host, "../../x"}, {host, "A/b"}, {host, "a//b"}, {"Host.com", "a"}, {host, "_blobs/x"},
	} {
		if _, err := c.Fetch(ctx, bad.host, bad.repo, d, -1, u.source(repo, d)); !errors.Is(err, ErrInvalidName) {
			t.Fatalf("Fetch(%q, %q): %v, want ErrInvalidName", bad.host, bad.repo, err)
		}
	}
	// Links survive a restart.
	dir := c.dir
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c2 := openCache(t, dir, Options{})
	if !c2.Has(host, "team/app", d) || !c2.Has(host, "other/app", d) || c2.Has(host, "secret/app", d) {
		t.Fatal("links not restored correctly after restart")
	}
}

// A fill in progress for one repository is joined by another only after
// the upstream confirms that repository.
func TestJoinFillFromOtherRepository(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 256<<10)
	d := u.add(data)
	u.setRepos(map[string]map[digest.Digest]bool{"a/app": {d: true}, "b/app": {d: true}})
	u.hold(1000)
	c := openCache(t, t.TempDir(), Options{})
	ctx := context.Background()

	ra, err := c.Fetch(ctx, host, "a/app", d, -1, u.source("a/app", d))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if _, err := c.Fetch(ctx, host, "c/app", d, -1, u.source("c/app", d)); !errors.Is(err, errUpstreamStatus) {
		t.Fatalf("unauthorised join: %v", err)
	}
	rb, err := c.Fetch(ctx, host, "b/app", d, -1, u.source("b/app", d))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	u.release()
	got, err := io.ReadAll(rb)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("joined reader: %v", err)
	}
	waitFills(t, c)
	if u.gets.Load() != 1 {
		t.Fatalf("GETs = %d, want 1", u.gets.Load())
	}
	if !c.Has(host, "a/app", d) || !c.Has(host, "b/app", d) || c.Has(host, "c/app", d) {
		t.Fatal("wrong links after a joined fill")
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%s not empty: %v", dir, names)
	}
}

// A repository the upstream refuses starts a fill; a repository it allows
// joins it and must not inherit the refusal.
func TestJoinerDoesNotInheritOtherRepositoryRefusal(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 64<<10)
	d := u.add(data)
	u.setRepos(map[string]map[digest.Digest]bool{"b/app": {d: true}})
	u.denyGate = make(chan struct{})
	c := openCache(t, t.TempDir(), Options{})

	errA := make(chan error, 1)
	go func() {
		_, err := c.Fetch(context.Background(), host, "a/app", d, -1, u.source("a/app", d))
		errA <- err
	}()
	testwait.True(t, 10*time.Second, "a/app's fill started", func() bool { return c.Exists(d) }) // and waits for its 404
	type result struct {
		b   []byte
		err error
	}
	resB := make(chan result, 1)
	go func() {
		r, err := c.Fetch(context.Background(), host, "b/app", d, -1, u.source("b/app", d))
		if err != nil {
			resB <- result{nil, err}
			return
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		resB <- result{b, err}
	}()
	testwait.True(t, 10*time.Second, "b/app checked and joined", func() bool { return c.Stats().Joins == 1 })
	close(u.denyGate)
	if err := <-errA; !errors.Is(err, errUpstreamStatus) {
		t.Fatalf("a/app: %v, want the upstream's refusal", err)
	}
	res := <-resB
	if res.err != nil || !bytes.Equal(res.b, data) {
		t.Fatalf("b/app inherited a/app's failure: %v", res.err)
	}
	waitFills(t, c)
	if !c.Has(host, "b/app", d) || c.Has(host, "a/app", d) {
		t.Fatal("wrong links")
	}
}
