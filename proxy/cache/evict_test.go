package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// fetchAll fetches d through c and checks the bytes.
func fetchAll(t testing.TB, c *Cache, u *testUpstream, d digest.Digest, want []byte) {
	t.Helper()
	r, err := c.Fetch(context.Background(), host, repo, d, int64(len(want)), u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("fetch %s: %v", d, err)
	}
}

func TestLRUEviction(t *testing.T) {
	u := newUpstream(t)
	const size = 100 << 10
	var ds []digest.Digest
	var data [][]byte
	for range 4 {
		b := randomBytes(t, size)
		data = append(data, b)
		ds = append(ds, u.add(b))
	}
	dir := t.TempDir()
	c := openCache(t, dir, Options{MaxSize: 3 * size})
	for i := range 3 {
		fetchAll(t, c, u, ds[i], data[i])
	}
	// Use blob 0 again: blob 1 is now the least recently used.
	fetchAll(t, c, u, ds[0], data[0])
	fetchAll(t, c, u, ds[3], data[3])
	if c.Has(host, repo, ds[1]) {
		t.Fatal("least recently used blob was not evicted")
	}
	for _, i := range []int{0, 2, 3} {
		if !c.Has(host, repo, ds[i]) {
			t.Fatalf("blob %d evicted, want kept", i)
		}
	}
	if _, err := os.Stat(c.blobPath(ds[1])); !os.IsNotExist(err) {
		t.Fatal("evicted content file still on disk")
	}
	if _, err := os.Stat(c.linkPath(scope{Host: host, Path: repo}, kindBlob, ds[1])); !os.IsNotExist(err) {
		t.Fatal("evicted content's link still on disk")
	}
	st := c.Stats()
	if st.Evictions != 1 || st.Size != 3*size || st.Entries != 3 {
		t.Fatalf("stats %+v", st)
	}

	// A blob held open by a reader is not evicted, even when it is the LRU.
	held, err := c.Blob(context.Background(), host, repo, ds[2])
	if err != nil {
		t.Fatal(err)
	}
	fetchAll(t, c, u, ds[3], data[3])
	fetchAll(t, c, u, ds[0], data[0]) // order now 0, 3, 2 (held)
	fetchAll(t, c, u, ds[1], data[1]) // evicts 3, the LRU not held
	if !c.Has(host, repo, ds[2]) || c.Has(host, repo, ds[3]) || !c.Has(host, repo, ds[0]) {
		t.Fatal("eviction took a blob being read, or skipped the LRU one")
	}
	got, err := io.ReadAll(held)
	if err != nil || !bytes.Equal(got, data[2]) {
		t.Fatal("held reader broken")
	}
	held.Close()

	// Access order survives a restart (file mtimes): the oldest goes first.
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(c.blobPath(ds[0]), old, old); err != nil {
		t.Fatal(err)
	}
	c2 := openCache(t, dir, Options{MaxSize: 2 * size})
	if c2.Has(host, repo, ds[0]) || !c2.Has(host, repo, ds[1]) || !c2.Has(host, repo, ds[2]) {
		t.Fatal("restart with a smaller budget evicted the wrong blob")
	}
}

func TestNeverEvictsFillInProgress(t *testing.T) {
	u := newUpstream(t)
	const size = 100 << 10
	big := randomBytes(t, 2*size)
	dBig := u.add(big)
	small := randomBytes(t, size)
	dSmall := u.add(small)
	// The big blob fills the whole budget (one larger than it is not cached
	// at all: TestBlobLargerThanCacheEvictsNothing).
	c := openCache(t, t.TempDir(), Options{MaxSize: 2 * size})
	fetchAll(t, c, u, dSmall, small)

	u.hold(1000)
	r, err := c.Fetch(context.Background(), host, repo, dBig, -1, u.source(repo, dBig))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A manifest commit runs eviction while the big fill is in progress.
	m := []byte(`{"schemaVersion":2}`)
	if err := c.PutManifest(host, repo, digest.FromBytes(m), "application/vnd.oci.image.manifest.v1+json", m); err != nil {
		t.Fatal(err)
	}
	u.release()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("fill disturbed by eviction: %v", err)
	}
	r.Close()
	waitFills(t, c)
	if !c.Has(host, repo, dBig) {
		t.Fatal("the fill that was in progress during eviction was not committed")
	}
	if c.Stats().Size > 2*size {
		t.Fatalf("size %d over budget %d after readers closed", c.Stats().Size, 2*size)
	}
}

func TestConcurrentReadsDuringEviction(t *testing.T) {
	u := newUpstream(t)
	const nblobs, size = 12, 64 << 10
	var ds []digest.Digest
	var data [][]byte
	for range nblobs {
		b := randomBytes(t, size)
		data = append(data, b)
		ds = append(ds, u.add(b))
	}
	// Room for a third of them: constant eviction and refilling.
	c := openCache(t, t.TempDir(), Options{MaxSize: nblobs / 3 * size})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 60 {
				i := rng.IntN(nblobs)
				r, err := c.Fetch(context.Background(), host, repo, ds[i], size, u.source(repo, ds[i]))
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, data[i]) {
					errs <- errors.New("wrong bytes during eviction")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFills(t, c)
	st := c.Stats()
	if st.Evictions == 0 {
		t.Fatal("test did not exercise eviction")
	}
	if st.Size > nblobs/3*size {
		t.Fatalf("over budget at rest: %+v", st)
	}
	// On-disk state matches the index.
	n := 0
	_ = filepath.WalkDir(filepath.Join(c.dir, "blobs"), func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			n++
		}
		return nil
	})
	if n != st.Entries {
		t.Fatalf("%d content files on disk, %d entries", n, st.Entries)
	}
}

// Range requests through http.ServeContent, on committed and streaming readers.
func TestServeContentRanges(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 1<<20)
	d := u.add(data)
	c := openCache(t, t.TempDir(), Options{})
	u.hold(300_000)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd, err := c.Fetch(r.Context(), host, repo, d, int64(len(data)), u.source(repo, d))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer rd.Close()
		http.ServeContent(w, r, "", time.Time{}, rd)
	}))
	defer srv.Close()

	get := func(rng string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	// While the fill is held at 300000 bytes, a range inside them is served.
	code, b := get("bytes=1000-1999")
	if code != http.StatusPartialContent || !bytes.Equal(b, data[1000:2000]) {
		t.Fatalf("streaming range: %d, %d bytes", code, len(b))
	}
	u.release()
	code, b = get("bytes=900000-")
	if code != http.StatusPartialContent || !bytes.Equal(b, data[900000:]) {
		t.Fatalf("tail range: %d", code)
	}
	waitFills(t, c)
	code, b = get("bytes=-10")
	if code != http.StatusPartialContent || !bytes.Equal(b, data[len(data)-10:]) {
		t.Fatalf("suffix range on committed: %d", code)
	}
	code, b = get("bytes=0-")
	if code != http.StatusPartialContent || !bytes.Equal(b, data) {
		t.Fatalf("full range: %d", code)
	}
	if u.gets.Load() != 1 {
		t.Fatalf("GETs = %d", u.gets.Load())
	}
}

// Room is made for a fill of announced size before it is written, so
// MaxSize bounds the disk, not just committed content.
func TestEvictionReservesRoomForFills(t *testing.T) {
	u := newUpstream(t)
	const size = 100 << 10
	var ds []digest.Digest
	var data [][]byte
	for range 4 {
		b := randomBytes(t, size)
		data = append(data, b)
		ds = append(ds, u.add(b))
	}
	c := openCache(t, t.TempDir(), Options{MaxSize: 3 * size})
	for i := range 3 {
		fetchAll(t, c, u, ds[i], data[i])
	}
	u.hold(1000)
	r, err := c.Fetch(context.Background(), host, repo, ds[3], -1, u.source(repo, ds[3]))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The upstream has sent 1000 bytes, yet the LRU blob is already gone.
	if st := c.Stats(); st.Size != 2*size || st.Evictions != 1 || c.Has(host, repo, ds[0]) {
		t.Fatalf("no room made before the fill: %+v", st)
	}
	u.release()
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, data[3]) {
		t.Fatalf("fill: %v", err)
	}
	waitFills(t, c)
	if st := c.Stats(); st.Size != 3*size || st.Evictions != 1 {
		t.Fatalf("after commit: %+v", st)
	}
}

// TestBlobLargerThanCacheEvictsNothing: a blob announced larger than the
// whole budget cannot be cached; making room for it would empty the cache
// (and an upstream that lies about Content-Length could do so at will).
// Fetch refuses it with ErrTooLarge, before any eviction, so the caller can
// stream it past the cache.
func TestBlobLargerThanCacheEvictsNothing(t *testing.T) {
	u := newUpstream(t)
	const size = 100 << 10
	var ds []digest.Digest
	var data [][]byte
	for range 3 {
		b := randomBytes(t, size)
		data = append(data, b)
		ds = append(ds, u.add(b))
	}
	c := openCache(t, t.TempDir(), Options{MaxSize: 3 * size})
	for i := range 3 {
		fetchAll(t, c, u, ds[i], data[i])
	}
	huge := u.add(randomBytes(t, 4*size))
	lying := Upstream{Open: func(context.Context) (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader("tiny")), 1 << 40, nil
	}}
	for _, tc := range []struct {
		name string
		d    digest.Digest
		up   Upstream
	}{
		{"real", huge, u.source(repo, huge)},
		{"lying Content-Length", digest.FromString("tiny"), lying},
	} {
		r, err := c.Fetch(context.Background(), host, repo, tc.d, -1, tc.up)
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: Fetch of a blob larger than the cache: %v, want ErrTooLarge", tc.name, err)
		}
		waitFills(t, c)
		if st := c.Stats(); st.Evictions != 0 || st.Size != 3*size {
			t.Fatalf("%s: the cache was emptied for a blob it could never hold: %+v", tc.name, st)
		}
	}
	for i := range 3 {
		if !c.Has(host, repo, ds[i]) {
			t.Fatalf("blob %d evicted", i)
		}
	}
}

// endless is an upstream body that would never end; it stops at 16 MiB
// so that a cache without the bound fails the test instead of the disk.
type endless struct{ sent int }

func (e *endless) Read(p []byte) (int, error) {
	if e.sent >= 16<<20 {
		return 0, io.EOF
	}
	clear(p)
	e.sent += len(p)
	return len(p), nil
}

// TestUnannouncedSizeStopsAtBudget: a fill whose size the upstream did not
// announce is stopped once it outgrows the whole budget (it could never be
// kept, and an endless body would otherwise fill the disk).
func TestUnannouncedSizeStopsAtBudget(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, Options{MaxSize: 1 << 20})
	up := Upstream{Open: func(context.Context) (io.ReadCloser, int64, error) {
		return io.NopCloser(&endless{}), -1, nil
	}}
	done := make(chan error, 1)
	go func() {
		// The fill may fail before Fetch has opened the reader (Fetch then
		// returns the error) or while the reader follows it.
		r, err := c.Fetch(context.Background(), host, repo, digest.FromString("anything"), -1, up)
		if err == nil {
			_, err = io.Copy(io.Discard, r)
			r.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("endless fill ended with %v, want ErrTooLarge", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an endless upstream body of unannounced size was never stopped")
	}
	waitFills(t, c)
	assertEmptyDir(t, filepath.Join(dir, "tmp"))
}
