package tokencache

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

	"github.com/spacelift-io/tollgate/ecr/ecrhost"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// EntryVersion is the on-disk format version. Files of another version are
// treated as missing and replaced.
const EntryVersion = 1

// maxEntrySize bounds what is read from a cache file; real entries are a few
// kilobytes (an ECR token is about 2 KB).
const maxEntrySize = 64 << 10

// Scope is what one token serves: every registry of a partition and region
// (FIPS or not, public or not), for one credential source.
type Scope struct {
	Source    string
	Partition string
	Region    string
	FIPS      bool
	Public    bool
}

// ScopeOf returns the scope a token for r from src belongs to.
func ScopeOf(r ecrhost.Registry, src Source) Scope {
	return Scope{Source: src.Key, Partition: r.Partition, Region: r.Region, FIPS: r.FIPS, Public: r.Public}
}

// ID is the scope's cache key: readable prefix plus a hash of the whole
// scope. The scope holds no secrets (see source), so a plain hash is fine.
func (s Scope) ID() string {
	h := sha256.New()
	fmt.Fprintf(h, "v%d\x00%s\x00%s\x00%s\x00%t\x00%t", EntryVersion, s.Source, s.Partition, s.Region, s.FIPS, s.Public)
	name := s.Partition + "_" + s.Region
	if s.FIPS {
		name += "_fips"
	}
	if s.Public {
		name += "_public"
	}
	return name + "_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// Entry is a cached token, as stored on disk (JSON, 0600).
type Entry struct {
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
	// RetryAfter is set when a refresh failed (throttling, outage) and this
	// still valid token was served instead: until then a refresh makes one
	// quick attempt instead of retrying for the whole budget, so a fleet does
	// not hammer a throttled or failing API and pulls do not each wait the
	// budget out, yet the first lookup after a recovery gets a new token.
	RetryAfter time.Time `json:"retry_after,omitzero"`
}

// Scope returns the scope the entry belongs to.
func (e *Entry) Scope() Scope {
	return Scope{Source: e.Source, Partition: e.Partition, Region: e.Region, FIPS: e.FIPS, Public: e.Public}
}

// FreshAt reports whether the entry has at least margin of life left at now.
func (e *Entry) FreshAt(now time.Time, margin time.Duration) bool {
	return e.ExpiresAt.Sub(now) >= margin
}

// ValidAt reports whether the entry is still usable at now at all (with a
// little slack for clock skew and the pull that follows).
func (e *Entry) ValidAt(now time.Time) bool {
	return e.ExpiresAt.Sub(now) > StaleSlack
}

// StaleSlack is the least life a token served during an outage must have.
const StaleSlack = time.Minute

// Disk stores entries as files in Dir, one per scope, each with a lock
// file beside it for the cross-process single flight.
type Disk struct {
	Dir string
}

// Path is the file of s's entry.
func (c *Disk) Path(s Scope) string { return filepath.Join(c.Dir, s.ID()+".json") }

// LockPath is the lock file that serialises minting for s.
func (c *Disk) LockPath(s Scope) string { return filepath.Join(c.Dir, s.ID()+".lock") }

// ErrForeign marks a cache file that is not ours to trust: wrong owner,
// readable by others, not a regular file.
var ErrForeign = errors.New("cache file is not private to this user")

// ErrCorrupt marks a cache file that does not hold a valid entry for the
// scope it is named after.
var ErrCorrupt = errors.New("cache file is corrupt or belongs to another credential source")

// Read returns the entry stored for s. A missing file is (nil, nil); a
// corrupt, foreign or mismatching file is (nil, err) and must not be served.
func (c *Disk) Read(s Scope) (*Entry, error) {
	// O_NONBLOCK: a FIFO in the file's place must not hang the caller on
	// open; it is refused below as not a regular file.
	f, err := os.OpenFile(c.Path(s), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrForeign, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: mode %v", ErrForeign, fi.Mode())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !c.trustedOwner(int(st.Uid)) {
		return nil, fmt.Errorf("%w: owned by uid %d", ErrForeign, st.Uid)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxEntrySize {
		return nil, fmt.Errorf("%w: too large", ErrCorrupt)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if e.Version != EntryVersion || e.Scope() != s || e.Username == "" || e.Password == "" || e.ExpiresAt.IsZero() {
		return nil, ErrCorrupt
	}
	return &e, nil
}

// trustedOwner reports whether a cache file owned by uid may be served: one
// of ours, or, when we are root, one of the cache directory's owner (root
// writing into another user's directory gives its files to that user, see
// securefile.WriteFile).
func (c *Disk) trustedOwner(uid int) bool {
	euid := os.Geteuid()
	if uid == euid {
		return true
	}
	if euid != 0 {
		return false
	}
	fi, err := os.Stat(c.Dir)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}

// Write stores e atomically (temp file + rename, 0600 in a 0700 directory).
func (c *Disk) Write(e *Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return securefile.WriteFile(c.Path(e.Scope()), data)
}

// EnsureDir creates the cache directory 0700, and tightens it if it exists
// with wider permissions and belongs to us.
func (c *Disk) EnsureDir() (tightened bool, err error) {
	if err := securefile.MkdirPrivate(c.Dir); err != nil {
		return false, err
	}
	exposed, _, err := securefile.CheckPrivate(c.Dir)
	if err != nil || !exposed {
		return false, err
	}
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return false, fmt.Errorf("cache directory %s is readable by other users and cannot be fixed: %w", c.Dir, err)
	}
	return true, nil
}

// staleFileAge is when a cache or lock file is certainly of no use: tokens
// live 12 hours at most.
const staleFileAge = 24 * time.Hour

// Sweep removes cache and lock files not touched for staleFileAge, left by
// credential sources that are gone (rotated session keys, old profiles), and
// the temporary files of writers killed before their rename (each may hold
// a token).
// Taking a lock sets its file's modification time (securefile.LockFile), so
// a lock file in use is never that old; removing one nobody has taken for a
// day races at worst into one extra mint.
func (c *Disk) Sweep(now time.Time) (removed int) {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return 0
	}
	for _, de := range ents {
		name := de.Name()
		if !strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".lock") && !strings.HasSuffix(name, ".none") &&
			!isTempFile(name) {
			continue
		}
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() || now.Sub(fi.ModTime()) < staleFileAge {
			continue
		}
		if os.Remove(filepath.Join(c.Dir, name)) == nil {
			removed++
		}
	}
	return removed
}

// isTempFile reports a temporary file of securefile.WriteFile for a cache
// entry or remembered failure: .<name>.json.tmp-<random> or .<name>.none.tmp-<random>.
func isTempFile(name string) bool {
	return strings.HasPrefix(name, ".") &&
		(strings.Contains(name, ".json.tmp-") || strings.Contains(name, ".none.tmp-"))
}
