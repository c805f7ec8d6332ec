package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// fileStore keeps leases on the shared tier's filesystem (a path on NFS or
// EFS that every host mounts), for fleets whose shared tier is the
// filesystem driver.
//
// A key's lease is a directory <root>/tollgate/leases/v1/<namespace>/<key>/
// of generation files g1, g2, ...: the highest one is the lease's current
// state, and every change (acquire, take over, renew, release) creates the
// next generation with link(2), which fails with EEXIST if another host
// created it first, so exactly one writer wins each generation (link is
// atomic on local filesystems and on NFS). A generation file is written
// whole under a temporary name before it is linked into place, so a
// reader never sees a partial one, and it is never changed. A host that
// read generation n can only try to create n+1, which exists if anyone
// wrote after n. Each write removes the generations before the previous
// one (a lease renewed for days, such as a fleet member record, keeps two
// or three files, not one per renewal); a writer whose next generation was
// among them re-creates it, then sees the later generation beside it and
// is refused just the same.
//
// Expiry is judged on the file server's clock: a generation's mtime plus
// its ttl against the mtime of a probe file created at the moment of the
// check, with one second of margin.
//
// Generation files are ~150 bytes; a key's directory stays after the
// lease is released. Removing key directories not modified for a day is
// safe: a live lease writes a generation at every renewal. The fleets'
// key directories are two levels under <root>/tollgate/leases/v1/tollgate-fleet
// (<mode>/<key>), doctor's probes one level under .../v1/doctor (see
// docs/fleet-lease.md for the find commands).
type fileStore struct {
	dir string // <root>/tollgate/leases/v1/<namespace>
}

var _ Store = (*fileStore)(nil)

func openFile(namespace string, params map[string]any) (*fileStore, error) {
	root, _ := params["rootdirectory"].(string)
	if root == "" {
		return nil, errors.New("lease: shared tier filesystem: no rootdirectory parameter: set proxy.shared.parameters.rootdirectory")
	}
	return &fileStore{dir: filepath.Join(root, "tollgate", "leases", "v1", filepath.FromSlash(namespace))}, nil
}

// fileRecord is the content of a generation file.
type fileRecord = s3Record

func (s *fileStore) Acquire(ctx context.Context, key, holder string, ttl time.Duration) (Lease, error) {
	if err := validAcquire(key, holder, ttl); err != nil {
		return Lease{}, err
	}
	dir := filepath.Join(s.dir, key)
	for attempt := 0; attempt < s3Attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return Lease{}, fmt.Errorf("lease: file: acquiring %s: %w", key, err)
		}
		n, rec, mtime, err := s.current(dir)
		if err != nil {
			return Lease{}, fmt.Errorf("lease: file: acquiring %s: %w", key, err)
		}
		if n > 0 && !rec.Released {
			now, err := s.serverNow()
			if err != nil {
				return Lease{}, fmt.Errorf("lease: file: acquiring %s: %w", key, err)
			}
			if remaining := mtime.Add(time.Duration(rec.TTLMs)*time.Millisecond + clockMargin).Sub(now); remaining > 0 {
				return Lease{Key: key, Holder: rec.Holder, Expires: time.Now().Add(remaining)}, ErrHeld
			}
		}
		token := newToken()
		start := time.Now()
		err = s.create(dir, n+1, fileRecord{Holder: holder, Token: token, TTLMs: ttl.Milliseconds()})
		if err == nil {
			return Lease{Key: key, Holder: holder, Expires: start.Add(ttl), token: token, etag: generation(n + 1)}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return Lease{}, fmt.Errorf("lease: file: acquiring %s: %w", key, err)
		}
		// Another host changed it first: look again.
	}
	return Lease{}, fmt.Errorf("lease: file: acquiring %s: the lease changed under us %d times; giving up this time", key, s3Attempts)
}

func (s *fileStore) Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := validTTL(ttl); err != nil {
		return l, err
	}
	n, err := parseGeneration(l.etag)
	if err != nil {
		return l, fmt.Errorf("lease: renewing %s: not a lease this store acquired", l.Key)
	}
	if err := ctx.Err(); err != nil {
		return l, fmt.Errorf("lease: file: renewing %s: %w", l.Key, err)
	}
	token := newToken()
	start := time.Now()
	err = s.create(filepath.Join(s.dir, l.Key), n+1, fileRecord{Holder: l.Holder, Token: token, TTLMs: ttl.Milliseconds()})
	if errors.Is(err, fs.ErrExist) {
		return l, ErrLost
	}
	if err != nil {
		return l, fmt.Errorf("lease: file: renewing %s: %w", l.Key, err)
	}
	l.token, l.etag, l.Expires = token, generation(n+1), start.Add(ttl)
	return l, nil
}

func (s *fileStore) Release(ctx context.Context, l Lease) error {
	n, err := parseGeneration(l.etag)
	if err != nil {
		return fmt.Errorf("lease: releasing %s: not a lease this store acquired", l.Key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lease: file: releasing %s: %w", l.Key, err)
	}
	err = s.create(filepath.Join(s.dir, l.Key), n+1, fileRecord{Holder: l.Holder, Token: newToken(), Released: true})
	if errors.Is(err, fs.ErrExist) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("lease: file: releasing %s: %w", l.Key, err)
	}
	return nil
}

// List reads the namespace's directory: each key directory whose name
// starts with prefix, its current generation and its mtime, judged against
// the file server's clock once for the whole listing.
func (s *fileStore) List(ctx context.Context, prefix string, max int) ([]Lease, error) {
	if err := validList(prefix, max); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing was ever written here
	}
	if err != nil {
		return nil, fmt.Errorf("lease: file: listing %q: %w", prefix, err)
	}
	now, err := s.serverNow()
	if err != nil {
		return nil, fmt.Errorf("lease: file: listing %q: %w", prefix, err)
	}
	local := time.Now()
	var out []Lease
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, prefix) || validKey(name) != nil {
			continue // temp and clock files, nested namespaces
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lease: file: listing %q: %w", prefix, err)
		}
		n, rec, mtime, err := s.current(filepath.Join(s.dir, name))
		if errors.Is(err, errNotLease) || errors.Is(err, fs.ErrNotExist) {
			continue // not ours, or removed by a clean-up meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("lease: file: listing %q: %w", prefix, err)
		}
		if n == 0 || rec.Released {
			continue
		}
		remaining := mtime.Add(time.Duration(rec.TTLMs)*time.Millisecond + clockMargin).Sub(now)
		if remaining <= 0 {
			continue
		}
		out = append(out, Lease{Key: name, Holder: rec.Holder, Expires: local.Add(remaining)})
		if len(out) == max {
			break
		}
	}
	return sortLeases(out), nil
}

func (s *fileStore) Close() error { return nil }

func generation(n int) string { return "g" + strconv.Itoa(n) }

func parseGeneration(name string) (int, error) {
	if !strings.HasPrefix(name, "g") {
		return 0, fmt.Errorf("not a generation: %q", name)
	}
	n, err := strconv.Atoi(name[1:])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("not a generation: %q", name)
	}
	return n, nil
}

// current returns the highest generation in dir (0 when there is none),
// its record and its mtime.
func (s *fileStore) current(dir string) (int, fileRecord, time.Time, error) {
	for attempt := 0; ; attempt++ {
		n, rec, mtime, err := s.readCurrent(dir)
		// A generation removed between listing and reading it: the lease
		// moved on twice meanwhile; look again.
		if errors.Is(err, errGenerationGone) && attempt < 3 {
			continue
		}
		return n, rec, mtime, err
	}
}

// errGenerationGone: the highest generation listed was removed before it
// could be read.
var errGenerationGone = errors.New("the lease's generation file went away while it was read")

func (s *fileStore) readCurrent(dir string) (int, fileRecord, time.Time, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fileRecord{}, time.Time{}, nil
	}
	if err != nil {
		return 0, fileRecord{}, time.Time{}, err
	}
	n := 0
	for _, e := range entries {
		if g, err := parseGeneration(e.Name()); err == nil && g > n {
			n = g
		}
	}
	if n == 0 {
		return 0, fileRecord{}, time.Time{}, nil
	}
	p := filepath.Join(dir, generation(n))
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fileRecord{}, time.Time{}, fmt.Errorf("%s: %w", p, errGenerationGone)
	}
	if err != nil {
		return 0, fileRecord{}, time.Time{}, err
	}
	var rec fileRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Token == "" {
		return 0, fileRecord{}, time.Time{}, fmt.Errorf("%s holds no tollgate lease: remove the directory %s: %w", p, dir, errNotLease)
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fileRecord{}, time.Time{}, fmt.Errorf("%s: %w", p, errGenerationGone)
	}
	if err != nil {
		return 0, fileRecord{}, time.Time{}, err
	}
	return n, rec, fi.ModTime(), nil
}

// create writes rec as generation n of dir: whole, under a temporary
// name, then linked into place; fs.ErrExist if generation n exists. It
// then removes the generations before n-1, so that a lease renewed for
// days (a fleet member record) keeps two or three small files rather than
// one per renewal. A writer that acts on a view so old that generation n
// was among those removed creates it again; it finds a later generation
// beside it and is told fs.ErrExist too, as if n had still been there
// (its file is left lower than the current one, which is what counts, and
// goes with the next removal).
func (s *fileStore) create(dir string, n int, rec fileRecord) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".tmp-"+rec.Token)
	if err := writeSynced(tmp, b); err != nil {
		os.Remove(tmp)
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(dir, generation(n))); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var old []string
	for _, e := range entries {
		g, err := parseGeneration(e.Name())
		if err != nil {
			continue
		}
		if g > n {
			return fmt.Errorf("generation %d was written again after it had been superseded by %d: %w", n, g, fs.ErrExist)
		}
		if g < n-1 {
			old = append(old, e.Name())
		}
	}
	for _, name := range old {
		_ = os.Remove(filepath.Join(dir, name)) // best effort: the next write tries again
	}
	return nil
}

// serverNow is the file server's current time: the mtime of a file
// created now.
func (s *fileStore) serverNow() (time.Time, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return time.Time{}, err
	}
	p := filepath.Join(s.dir, ".clock-"+newToken())
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return time.Time{}, err
	}
	defer os.Remove(p)
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
