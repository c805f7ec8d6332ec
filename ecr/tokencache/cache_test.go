package tokencache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr/ecrhost"
)

func testScope(t *testing.T, key string) (ecrhost.Registry, Scope) {
	t.Helper()
	r, err := ecrhost.Parse("111111111111.dkr.ecr.us-west-2.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	return r, ScopeOf(r, Source{Key: key})
}

func entryFor(s Scope, password string, expires time.Time) *Entry {
	return &Entry{Version: EntryVersion, Source: s.Source, Partition: s.Partition, Region: s.Region,
		Username: "AWS", Password: password, ExpiresAt: expires, MintedAt: time.Now()}
}

func TestDiskRoundTripAndRejects(t *testing.T) {
	d := &Disk{Dir: filepath.Join(t.TempDir(), "ecr")}
	_, s := testScope(t, "env-keys:AKIA1")
	if e, err := d.Read(s); e != nil || err != nil {
		t.Fatalf("missing file: %v %v", e, err)
	}
	if _, err := d.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	want := entryFor(s, "pw", time.Now().Add(12*time.Hour).UTC().Round(0))
	if err := d.Write(want); err != nil {
		t.Fatal(err)
	}
	got, err := d.Read(s)
	if err != nil || got.Password != "pw" || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("read back %+v %v", got, err)
	}
	// The same file under another source's name is not served.
	_, other := testScope(t, "env-keys:AKIA2")
	data, _ := os.ReadFile(d.Path(s))
	os.WriteFile(d.Path(other), data, 0o600)
	if e, err := d.Read(other); e != nil || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("foreign scope: %v %v", e, err)
	}
	os.Chmod(d.Path(s), 0o640)
	if e, err := d.Read(s); e != nil || !errors.Is(err, ErrForeign) {
		t.Fatalf("group-readable: %v %v", e, err)
	}
}

func TestDirectoryIsTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ecr")
	os.MkdirAll(dir, 0o755)
	d := &Disk{Dir: dir}
	tightened, err := d.EnsureDir()
	if err != nil || !tightened {
		t.Fatalf("%v %v", tightened, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

// Concurrent writers replace the file atomically: a reader sees a complete
// entry or none, never a torn or mixed one.
func TestConcurrentWritersAndReaders(t *testing.T) {
	d := &Disk{Dir: filepath.Join(t.TempDir(), "ecr")}
	_, s := testScope(t, "instance-role:")
	d.EnsureDir()
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				// Passwords of very different lengths, so a torn write would show.
				pw := fmt.Sprintf("w%d-%d-%0*d", w, i, (w*37+i)%2000, 0)
				if err := d.Write(entryFor(s, pw, exp)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for range 2 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				e, err := d.Read(s)
				if err != nil {
					errs <- err
					return
				}
				if e != nil && (e.Username != "AWS" || e.Password == "" || e.Password[0] != 'w') {
					errs <- fmt.Errorf("torn entry %+v", e)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(d.Dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestLookupFreshHonoursMargin(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFRESH")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	l := &Lookup{Disk: Disk{Dir: filepath.Join(t.TempDir(), "ecr")}, Margin: time.Hour}
	req, err := l.Resolve("https://111111111111.dkr.ecr.us-west-2.amazonaws.com/v2/")
	if err != nil {
		t.Fatal(err)
	}
	l.Disk.EnsureDir()
	for _, tc := range []struct {
		left  time.Duration
		fresh bool
	}{{2 * time.Hour, true}, {61 * time.Minute, true}, {59 * time.Minute, false}, {-time.Minute, false}} {
		l.Disk.Write(entryFor(req.Scope, "pw", time.Now().Add(tc.left)))
		e, err := l.Fresh(req)
		if err != nil || (e != nil) != tc.fresh {
			t.Errorf("%v left: fresh=%v err=%v", tc.left, e != nil, err)
		}
	}
	if _, err := l.Resolve("ghcr.io"); !errors.Is(err, ecrhost.ErrNotECR) {
		t.Fatal(err)
	}
}

func TestNormalizeRegistries(t *testing.T) {
	got, err := NormalizeRegistries(map[string]config.ECRRegistry{
		"HTTPS://111111111111.DKR.ECR.us-west-2.amazonaws.com/": {RoleARN: "arn:aws:iam::222222222222:role/x"},
	})
	if err != nil || got["111111111111.dkr.ecr.us-west-2.amazonaws.com"].RoleARN == "" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []map[string]config.ECRRegistry{
		{"docker.io": {}},
		{"111111111111.dkr.ecr.us-west-2.amazonaws.com": {RoleARN: "arn:aws:iam::1:role/x"}},
		{"111111111111.dkr.ecr.us-west-2.amazonaws.com": {RoleARN: "arn:aws:iam::222222222222:user/x"}},
	} {
		var se *SettingsError
		if _, err := NormalizeRegistries(bad); !errors.As(err, &se) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

// Root using a cache directory that belongs to another user (the runner's
// TOLLGATE_CACHE_DIR) writes files that user owns, so the user's helper can
// read them; root must then read them back too, not mint on every lookup.
func TestRootReadsEntriesOfTheDirectoryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	d := &Disk{Dir: filepath.Join(t.TempDir(), "ecr")}
	if _, err := d.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d.Dir, 1983, 1983); err != nil {
		t.Fatal(err)
	}
	_, s := testScope(t, "env-keys:AKIAROOT")
	if err := d.Write(entryFor(s, "pw", time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if e, err := d.Read(s); err != nil || e == nil || e.Password != "pw" {
		t.Fatalf("read back %v %v", e, err)
	}
	// A file of yet another user is still foreign.
	if err := os.Chown(d.Path(s), 1984, 1984); err != nil {
		t.Fatal(err)
	}
	if e, err := d.Read(s); e != nil || !errors.Is(err, ErrForeign) {
		t.Fatalf("file of uid 1984: %v %v", e, err)
	}
}

// A process killed between creating its temporary file and renaming it
// leaves a token behind in .<entry>.json.tmp-*; the sweep removes such
// leftovers once old, like every other stale file, and leaves a young one
// (possibly a write in progress) and unrelated files alone.
func TestSweepRemovesTempFilesOfCrashedWriters(t *testing.T) {
	d := &Disk{Dir: filepath.Join(t.TempDir(), "ecr")}
	_, s := testScope(t, "env-keys:AKIA1")
	if _, err := d.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleFileAge)
	base := filepath.Base(d.Path(s))
	leftovers := []string{"." + base + ".tmp-123456", "." + s.ID() + ".none.tmp-99"}
	young := "." + base + ".tmp-777"
	unrelated := "notes.txt"
	for _, n := range append([]string{young, unrelated}, leftovers...) {
		if err := os.WriteFile(filepath.Join(d.Dir, n), []byte(`{"password":"secret"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range append([]string{unrelated}, leftovers...) {
		if err := os.Chtimes(filepath.Join(d.Dir, n), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Sweep(time.Now()); n != len(leftovers) {
		t.Errorf("Sweep removed %d files, want %d", n, len(leftovers))
	}
	for _, n := range leftovers {
		if _, err := os.Lstat(filepath.Join(d.Dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale temporary file %s left behind (err %v)", n, err)
		}
	}
	for _, n := range []string{young, unrelated} {
		if _, err := os.Lstat(filepath.Join(d.Dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}

// A FIFO in place of a cache file (hostile or a mistake) must not hang every
// helper process on open: it is reported as not a private regular file.
func TestReadDoesNotBlockOnFIFO(t *testing.T) {
	d := &Disk{Dir: filepath.Join(t.TempDir(), "ecr")}
	_, s := testScope(t, "env-keys:AKIA1")
	if _, err := d.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(d.Path(s), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		e, err := d.Read(s)
		if e != nil {
			err = fmt.Errorf("served an entry from a FIFO: %+v", e)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrForeign) {
			t.Fatalf("Read of a FIFO: %v, want ErrForeign", err)
		}
	case <-time.After(5 * time.Second):
		// Unblock the reader so the test binary can exit.
		if f, err := os.OpenFile(d.Path(s), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Read blocked on a FIFO in place of the cache file")
	}
}
