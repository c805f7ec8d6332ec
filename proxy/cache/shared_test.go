package cache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/testwait"
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
	// fetch goes upstream. (The tier stores what it is given: verifying is
	// the cache's job.)
	bad := append([]byte(nil), data...)
	bad[10] ^= 1
	if err := tier.Put(context.Background(), d, int64(len(bad)), bytes.NewReader(bad)); err != nil {
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

// TestHelperUploadProcess is not a test: TestKill9MidUploadLeavesNoLitter
// runs the test binary as a child that uploads half a blob to a shared tier
// and then waits to be killed.
func TestHelperUploadProcess(t *testing.T) {
	root := os.Getenv("CACHE_HELPER_SHARED")
	if root == "" {
		t.Skip("helper process for TestKill9MidUploadLeavesNoLitter")
	}
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(make([]byte, 512<<10))
		fmt.Println("HALF-UPLOADED")
		select {} // the rest never comes: the parent kills us
	}()
	_ = tier.Put(context.Background(), digest.FromString("never"), 1<<20, pr)
	os.Exit(3)
}

// TestKill9MidUploadLeavesNoLitter: a host killed in the middle of an upload
// to the shared tier leaves a partial object under uploads/. It never shows
// under a digest's name, and opening a cache on the tier removes it once it
// is old enough not to be another host's upload in progress.
func TestKill9MidUploadLeavesNoLitter(t *testing.T) {
	sharedDir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperUploadProcess$")
	cmd.Env = append(os.Environ(), "CACHE_HELPER_SHARED="+sharedDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if s.Text() == "HALF-UPLOADED" {
				line <- s.Text()
				return
			}
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("upload helper ended without uploading: %v", l)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("upload helper never started")
	}
	uploads := filepath.Join(sharedDir, "tollgate", "uploads")
	// The bytes written before the kill are in the upload's file.
	var partial string
	testwait.True(t, 10*time.Second, "a partial upload in "+uploads, func() bool {
		if ents, _ := os.ReadDir(uploads); len(ents) == 1 {
			if fi, err := ents[0].Info(); err == nil && fi.Size() > 0 {
				partial = filepath.Join(uploads, ents[0].Name())
			}
		}
		return partial != ""
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// Another host's upload in progress right now: recent, so it stays.
	inProgress := filepath.Join(uploads, "0123456789abcdef01234567")
	mustWrite(t, inProgress, []byte("uploading"))
	// The killed host's leftover, as found a day later.
	old := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(partial, old, old); err != nil {
		t.Fatal(err)
	}

	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": sharedDir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tier.Stat(context.Background(), digest.FromString("never")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partial upload visible under its digest: %v", err)
	}
	openCache(t, t.TempDir(), Options{Shared: tier})
	// The sweep runs in the background.
	testwait.True(t, 10*time.Second, "partial upload of a killed host removed from the shared tier", func() bool {
		_, err := os.Stat(partial)
		return errors.Is(err, os.ErrNotExist)
	})
	if _, err := os.Stat(inProgress); err != nil {
		t.Errorf("another host's upload in progress was removed: %v", err)
	}
}

// TestSharedCopyOfWrongSizeGoesUpstream: a shared copy whose size is not the
// one the caller expects (a truncated object) cannot be the content; the
// fill goes upstream rather than failing the pull, and the copy is deleted.
func TestSharedCopyOfWrongSizeGoesUpstream(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 256<<10)
	d := u.add(data)
	sharedDir := t.TempDir()
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": sharedDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := tier.Put(context.Background(), d, 1000, bytes.NewReader(data[:1000])); err != nil {
		t.Fatal(err)
	}
	c := openCache(t, t.TempDir(), Options{Shared: tier})
	r, err := c.Fetch(context.Background(), host, repo, d, int64(len(data)), u.source(repo, d))
	if err != nil {
		t.Fatalf("fetch with a truncated shared copy: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with a truncated shared copy: %v", err)
	}
	waitFills(t, c) // and the re-upload of a good copy
	if n, err := tier.Stat(context.Background(), d); err != nil || n != int64(len(data)) {
		t.Fatalf("shared copy after the fill: %d %v; want the whole blob", n, err)
	}
}

// TestFilesystemTierIsPrivate: in private mode the shared tier holds
// private images, like the local cache: a filesystem tier whose root does
// not exist yet is created 0700, not world-readable.
func TestFilesystemTierIsPrivate(t *testing.T) {
	root := filepath.Join(t.TempDir(), "shared")
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("private layer")
	if err := tier.Put(context.Background(), digest.FromBytes(data), int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("shared tier root %s is %v: readable by other users", root, fi.Mode().Perm())
	}
}

// stallingTier is a real filesystem tier whose uploads stop after the first
// read, as an object store that stops acknowledging: Put waits for its
// context, as the SDKs' clients do.
type stallingTier struct {
	SharedTier
	released chan struct{}
}

func (s *stallingTier) Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error {
	_, _ = r.Read(make([]byte, 1024))
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.released:
		return errors.New("released by the test")
	}
}

// TestStalledUploadIsCancelled: an upload to the shared tier that makes no
// progress is cancelled after the idle timeout; it does not keep the blob
// pinned against eviction (and Close waiting) for as long as the tier hangs.
func TestStalledUploadIsCancelled(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 256<<10)
	d := u.add(data)
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := &stallingTier{SharedTier: tier, released: make(chan struct{})}
	c := openCache(t, t.TempDir(), Options{Shared: st, FillIdleTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { close(st.released) }) // runs before the cache's Close
	fetchAll(t, c, u, d, data)
	done := make(chan struct{})
	go func() { waitFills(t, c); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled upload to the shared tier is still running 10 s later (idle timeout 200 ms)")
	}
	if s := c.Stats(); s.SharedErrors != 1 || s.SharedUploads != 0 {
		t.Fatalf("stats %+v, want one shared error", s)
	}
	// Unpinned: a smaller budget can evict it.
	c.mu.Lock()
	refs := c.entries[d].refs
	c.mu.Unlock()
	if refs != 0 {
		t.Fatalf("blob still pinned by %d readers after the upload ended", refs)
	}
}

// hungDeleteTier is a real filesystem tier whose Delete hangs in the kernel
// (ignoring its context) until the test ends.
type hungDeleteTier struct {
	SharedTier
	until chan struct{}
}

func (h *hungDeleteTier) Delete(ctx context.Context, d digest.Digest) error {
	<-h.until
	return h.SharedTier.Delete(ctx, d)
}

// TestCorruptSharedCopyFailsPromptlyWhenDeleteHangs: the clients of a fill
// from a corrupt shared copy get their error when the digest mismatch is
// found, not once the tier has deleted the copy.
func TestCorruptSharedCopyFailsPromptlyWhenDeleteHangs(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 64<<10)
	d := u.add(data)
	sharedDir := t.TempDir()
	tier, err := OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": sharedDir})
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	bad[100] ^= 1
	if err := tier.Put(context.Background(), d, int64(len(bad)), bytes.NewReader(bad)); err != nil {
		t.Fatal(err)
	}
	until := make(chan struct{})
	c := openCache(t, t.TempDir(), Options{Shared: &hungDeleteTier{SharedTier: tier, until: until}, SharedTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { close(until) })
	errc := make(chan error, 1)
	go func() {
		r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("corrupt shared copy: %v, want ErrDigestMismatch", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client of a corrupt shared copy still waits 10 s later, on the tier's Delete")
	}
}
