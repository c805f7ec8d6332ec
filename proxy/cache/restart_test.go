package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

// TestHelperFillProcess is not a test: TestKill9MidFill runs the test binary
// as a child that opens the cache and fills one blob, then kills it.
func TestHelperFillProcess(t *testing.T) {
	dir, url := os.Getenv("CACHE_HELPER_DIR"), os.Getenv("CACHE_HELPER_URL")
	if dir == "" {
		t.Skip("helper process for TestKill9MidFill")
	}
	d := digest.Digest(os.Getenv("CACHE_HELPER_DIGEST"))
	c, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	u := &testUpstream{srv: nil}
	src := u.sourceURL(url)
	r, err := c.Fetch(context.Background(), host, repo, d, -1, src)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_, _ = io.Copy(io.Discard, r)
	os.Exit(3) // never reached: the parent kills us mid-blob
}

func TestKill9MidFill(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 4<<20)
	d := u.add(data)
	u.hold(1 << 20)
	dir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFillProcess$", "-test.v")
	cmd.Env = append(os.Environ(),
		"CACHE_HELPER_DIR="+dir,
		"CACHE_HELPER_URL="+u.srv.URL+"/"+repo+"/"+string(d),
		"CACHE_HELPER_DIGEST="+string(d))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-u.sent: // the child is 1 MiB into the blob
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("child never started the fill: %s", out.String())
	}
	// Wait until the child has written the first MiB to its temp file.
	testwait.True(t, 10*time.Second, "a 1 MiB partial temp file in "+dir, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, "tmp"))
		if len(ents) != 1 {
			return false
		}
		fi, err := ents[0].Info()
		return err == nil && fi.Size() == 1<<20
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	u.release()

	// Leftovers of other kinds of crash: a stray temp file, an interrupted
	// tag write, a link whose content was never committed, an empty content
	// file.
	other := digest.FromString("other")
	mustWrite(t, filepath.Join(dir, "tmp", "fill-123"), []byte("partial"))
	mustWrite(t, filepath.Join(dir, "repos", host, repo, "_blobs", "sha256", other.Encoded()), nil)
	mustWrite(t, filepath.Join(dir, "blobs", "sha256", other.Encoded()[:2], other.Encoded()), nil)

	c := openCache(t, dir, Options{})
	assertEmptyDir(t, filepath.Join(dir, "tmp"))
	if c.Exists(d) || c.Has(host, repo, d) || c.Exists(other) || c.Has(host, repo, other) {
		t.Fatal("partial or unverified content visible after the crash")
	}
	if _, err := c.Blob(context.Background(), host, repo, d); err == nil {
		t.Fatal("served a blob whose fill was killed")
	}
	if _, err := os.Stat(filepath.Join(dir, "repos", host, repo, "_blobs", "sha256", other.Encoded())); !os.IsNotExist(err) {
		t.Fatal("dangling link not cleaned")
	}
	// The next fetch fills from scratch and serves the right bytes.
	r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("refill after crash: %v", err)
	}
}

func TestCommittedContentSurvivesRestart(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 300<<10)
	d := u.add(data)
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r)
	r.Close()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A second process on the same directory is refused while one is open.
	c2 := openCache(t, dir, Options{})
	if _, err := Open(context.Background(), Options{Dir: dir}); err == nil {
		t.Fatal("second Open of a directory in use succeeded")
	}
	r, err = c2.Blob(context.Background(), host, repo, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after restart: %v", err)
	}
	if u.gets.Load() != 1 {
		t.Fatalf("GETs = %d, want 1", u.gets.Load())
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenDeletesOnlyItsOwnLeftovers: a cache directory that holds other
// things (proxy.cache.dir set to a home directory, or shared with the ECR
// token cache) loses none of them when the cache opens: only the cache's own
// leftovers in tmp/ are removed, not whatever else tmp/ holds.
func TestOpenDeletesOnlyItsOwnLeftovers(t *testing.T) {
	dir := t.TempDir()
	theirs := []string{
		filepath.Join(dir, "tmp", "notes.txt"),
		filepath.Join(dir, "tmp", "project", "main.go"),
		filepath.Join(dir, ".bashrc"),
		filepath.Join(dir, "ecr", "token.json"),
		filepath.Join(dir, "repos", "project", "notes.tmp-1"),
		filepath.Join(dir, "repos", "project", "src", ".swap.tmp-2"),
	}
	for _, p := range theirs {
		mustWrite(t, p, []byte("mine"))
	}
	ours := []string{
		filepath.Join(dir, "tmp", "fill-123"),
		filepath.Join(dir, "tmp", "put-456"),
		filepath.Join(dir, "tmp", "evicted-"+digest.FromString("a").Encoded()),
		filepath.Join(dir, "tmp", "damaged-"+digest.FromString("b").Encoded()),
	}
	for _, p := range ours {
		mustWrite(t, p, []byte("partial"))
	}
	c := openCache(t, dir, Options{})
	for _, p := range theirs {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("opening the cache removed %s: %v", p, err)
		}
	}
	for _, p := range ours {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("the cache's own leftover %s was not removed: %v", p, err)
		}
	}
	// The cache still works there.
	u := newUpstream(t)
	data := randomBytes(t, 1000)
	fetchAll(t, c, u, u.add(data), data)
}

// TestLockErrorSaysWhatIsWrong: only a lock held by another process is
// reported as the directory being in use; a lock file that cannot be used
// (a symbolic link planted there, a file of another user) says so, not "in
// use by another process", which would send the operator looking for a
// second proxy that does not exist.
func TestLockErrorSaysWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{Dir: dir})
	if err == nil {
		t.Fatal("Open with a symbolic link as its lock file succeeded")
	}
	if strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("error %q: want the lock file's problem, not 'in use'", err)
	}
	// A lock really held still says so.
	dir2 := t.TempDir()
	openCache(t, dir2, Options{})
	if _, err := Open(context.Background(), Options{Dir: dir2}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Open of a directory in use: %v", err)
	}
}
