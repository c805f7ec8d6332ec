package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestHelperCrashLoop is not a test: TestKill9AtRandomPoints runs the test
// binary as a child that fills, evicts, stores manifests, links and records
// tags in a loop until it is killed.
func TestHelperCrashLoop(t *testing.T) {
	dir := os.Getenv("CACHE_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestKill9AtRandomPoints")
	}
	base := os.Getenv("CACHE_CRASH_URL")
	var ds []digest.Digest
	for _, s := range strings.Split(os.Getenv("CACHE_CRASH_DIGESTS"), ",") {
		ds = append(ds, digest.Digest(s))
	}
	c, err := Open(context.Background(), Options{Dir: dir, MaxSize: crashMaxSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	u := &testUpstream{}
	fmt.Println("OPEN")
	announced := false
	for i := 0; ; i++ {
		// Once the cache holds something, a kill can be checked for what
		// it left; the parent waits for this line before its random wait.
		if !announced && c.Stats().Entries > 0 {
			fmt.Println("CACHED")
			announced = true
		}
		d := ds[i%len(ds)]
		r, err := c.Fetch(context.Background(), host, repo, d, -1, u.sourceURL(base+"/"+repo+"/"+string(d)))
		if err == nil {
			_, _ = io.Copy(io.Discard, r)
			r.Close()
		}
		_ = c.Link(host, "other/app", d)
		m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"n":%d}`, ociManifest, i))
		md := digest.FromBytes(m)
		_ = c.PutManifest(host, repo, md, ociManifest, m)
		_ = c.LinkManifest(host, "other/app", md, "")
		_ = c.PutTag(host, repo, fmt.Sprintf("t%d", i%5), Tag{Digest: md, MediaType: ociManifest, FetchedAt: time.Now()})
	}
}

const crashMaxSize = 3*crashBlobSize + 64<<10

const crashBlobSize = 200 << 10

// TestKill9AtRandomPoints kills a process that is filling, evicting,
// storing manifests, linking and recording tags at random points, and checks
// after each kill that the cache opens clean: no leftovers, every committed
// file verifies, every tag record and manifest link reads, and the size it
// counts is what is on disk.
func TestKill9AtRandomPoints(t *testing.T) {
	u := newUpstream(t)
	var ds []string
	for range 8 {
		ds = append(ds, string(u.add(randomBytes(t, crashBlobSize))))
	}
	dir := t.TempDir()
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashLoop$")
		cmd.Env = append(os.Environ(), "CACHE_CRASH_DIR="+dir, "CACHE_CRASH_URL="+u.srv.URL,
			"CACHE_CRASH_DIGESTS="+strings.Join(ds, ","))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The kill comes at a random point after the cache first holds
		// something (at once in later rounds), not after a fixed time from
		// the start, which a loaded machine may spend before the first fill.
		const ready = "OPEN\nCACHED\n"
		started := make(chan string, 1)
		go func() {
			b := make([]byte, len(ready))
			n, _ := io.ReadFull(out, b)
			started <- string(b[:n])
			_, _ = io.Copy(io.Discard, out)
		}()
		select {
		case got := <-started:
			if got != ready {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("round %d: helper did not open the cache and fill it: %q %s", round, got, stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: helper did not fill the cache within 30s: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		c := openCache(t, dir, Options{MaxSize: crashMaxSize})
		assertEmptyDir(t, filepath.Join(dir, "tmp"))
		checked, removed, err := c.Verify(context.Background())
		if err != nil || len(removed) != 0 {
			t.Fatalf("round %d: Verify after kill -9: %d checked, removed %v, %v", round, checked, removed, err)
		}
		var onDisk int64
		_ = filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, de fs.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				if fi, err := de.Info(); err == nil {
					onDisk += fi.Size()
				}
			}
			return nil
		})
		st := c.Stats()
		if st.Size != onDisk {
			t.Fatalf("round %d: cache counts %d bytes, %d on disk", round, st.Size, onDisk)
		}
		if st.Entries == 0 {
			t.Fatalf("round %d: the helper cached nothing before it was killed: %s", round, stderr.String())
		}
		for i := range 5 {
			tag, err := c.GetTag(host, repo, fmt.Sprintf("t%d", i))
			if errors.Is(err, ErrNotFound) && !strings.Contains(err.Error(), "unreadable") {
				continue // not recorded yet
			}
			if err != nil {
				t.Fatalf("round %d: tag t%d after kill -9: %v", round, i, err)
			}
			for _, r := range []string{repo, "other/app"} {
				m, err := c.GetManifest(host, r, tag.Digest)
				if err == nil && m.MediaType != ociManifest {
					t.Fatalf("round %d: manifest %s in %s served with media type %q", round, tag.Digest, r, m.MediaType)
				}
			}
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
