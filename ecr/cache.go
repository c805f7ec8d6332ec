package ecr

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spacelift-io/tollgate/internal/securefile"
)

// entryVersion is the on-disk format version. Files of another version are
// treated as missing and replaced.
const entryVersion = 1

// maxEntrySize bounds what is read from a cache file; real entries are a few
// kilobytes (an ECR token is about 2 KB).
const maxEntrySize = 64 << 10

// scope is what one token serves: every registry of a partition and region
// (FIPS or not, public or not), for one credential source.
type scope struct {
	Source    string
	Partition string
	Region    string
	FIPS      bool
	Public    bool
}

func scopeOf(r Registry, src source) scope {
	return scope{Source: src.key, Partition: r.Partition, Region: r.Region, FIPS: r.FIPS, Public: r.Public}
}

// id is the scope's cache key: readable prefix plus a hash of the whole
// scope. The scope holds no secrets (see source), so a plain hash is fine.
func (s scope) id() string {
	h := sha256.New()
	fmt.Fprintf(h, "v%d\x00%s\x00%s\x00%s\x00%t\x00%t", entryVersion, s.Source, s.Partition, s.Region, s.FIPS, s.Public)
	name := s.Partition + "_" + s.Region
	if s.FIPS {
		name += "_fips"
	}
	if s.Public {
		name += "_public"
	}
	return name + "_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// entry is a cached token, as stored on disk (JSON, 0600).
type entry struct {
	Version   int       `json:"version"`
	Source    string    `json:"source"`
	Identity  string    `json:"identity,omitempty"`
	Partition string    `json:"partition"`
	Region    string    `json:"region"`
	FIPS      bool      `json:"fips,omitempty"`
	Public    bool      `json:"public,omitempty"`
	Username  string    `json:"username"`
	Password  string    `json:"password"`
	ExpiresAt time.Time `json:"expires_at"`
	MintedAt  time.Time `json:"minted_at"`
}

func (e *entry) scope() scope {
	return scope{Source: e.Source, Partition: e.Partition, Region: e.Region, FIPS: e.FIPS, Public: e.Public}
}

// freshAt reports whether the entry has at least margin of life left at now.
func (e *entry) freshAt(now time.Time, margin time.Duration) bool {
	return e.ExpiresAt.Sub(now) >= margin
}

// validAt reports whether the entry is still usable at now at all (with a
// little slack for clock skew and the pull that follows).
func (e *entry) validAt(now time.Time) bool {
	return e.ExpiresAt.Sub(now) > staleSlack
}

// staleSlack is the least life a token served during an outage must have.
const staleSlack = time.Minute

// diskCache stores entries as files in dir, one per scope, each with a lock
// file beside it for the cross-process single flight.
type diskCache struct {
	dir string
}

func (c *diskCache) path(s scope) string { return filepath.Join(c.dir, s.id()+".json") }
func (c *diskCache) lockPath(s scope) string {
	return filepath.Join(c.dir, s.id()+".lock")
}

// errForeign marks a cache file that is not ours to trust: wrong owner,
// readable by others, not a regular file.
var errForeign = errors.New("cache file is not private to this user")

// errCorrupt marks a cache file that does not hold a valid entry for the
// scope it is named after.
var errCorrupt = errors.New("cache file is corrupt or belongs to another credential source")

// read returns the entry stored for s. A missing file is (nil, nil); a
// corrupt, foreign or mismatching file is (nil, err) and must not be served.
func (c *diskCache) read(s scope) (*entry, error) {
	f, err := os.OpenFile(c.path(s), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errForeign, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: mode %v", errForeign, fi.Mode())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%w: owned by uid %d", errForeign, st.Uid)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxEntrySize {
		return nil, fmt.Errorf("%w: too large", errCorrupt)
	}
	var e entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if e.Version != entryVersion || e.scope() != s || e.Username == "" || e.Password == "" || e.ExpiresAt.IsZero() {
		return nil, errCorrupt
	}
	return &e, nil
}

// write stores e atomically (temp file + rename, 0600 in a 0700 directory).
func (c *diskCache) write(e *entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return securefile.WriteFile(c.path(e.scope()), data)
}

// ensureDir creates the cache directory 0700, and tightens it if it exists
// with wider permissions and belongs to us.
func (c *diskCache) ensureDir() (tightened bool, err error) {
	if err := securefile.MkdirPrivate(c.dir); err != nil {
		return false, err
	}
	exposed, _, err := securefile.CheckPrivate(c.dir)
	if err != nil || !exposed {
		return false, err
	}
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return false, fmt.Errorf("cache directory %s is readable by other users and cannot be fixed: %w", c.dir, err)
	}
	return true, nil
}

// staleFileAge is when a cache or lock file is certainly of no use: tokens
// live 12 hours at most.
const staleFileAge = 24 * time.Hour

// sweep removes cache and lock files not touched for staleFileAge, left by
// credential sources that are gone (rotated session keys, old profiles).
// Removing an old lock file races at worst into one extra mint.
func (c *diskCache) sweep(now time.Time) (removed int) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0
	}
	for _, de := range ents {
		name := de.Name()
		if !strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".lock") {
			continue
		}
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() || now.Sub(fi.ModTime()) < staleFileAge {
			continue
		}
		if os.Remove(filepath.Join(c.dir, name)) == nil {
			removed++
		}
	}
	return removed
}
