package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spacelift-io/tollgate/internal/securefile"
)

// Mode says whose content a cache holds, and its directory remembers it
// (the file tollgate-mode), so that a public proxy never serves what a
// private one fetched with credentials.
type Mode string

const (
	// ModePrivate: content fetched with credentials, possibly private
	// images. A private cache may open any directory (public content is
	// public) and marks it private before it caches anything.
	ModePrivate Mode = "private"
	// ModePublic: content fetched without credentials only. A public cache
	// refuses a directory a private one filled, or one holding content of
	// unknown origin.
	ModePublic Mode = "public"
)

// modeFile, inside the cache directory, records the Mode its content was
// fetched in.
const modeFile = "tollgate-mode"

// ErrPrivateContent: the directory holds content fetched with credentials
// (or of unknown origin), and a public cache must not serve it.
var ErrPrivateContent = errors.New("cache directory holds content fetched in private mode")

// claimMode guards the one way a public proxy could serve private content:
// a cache directory filled earlier by a private proxy. Digests and blobs
// cached for a repository are served without asking the upstream, so a
// public cache refuses such a directory. Called with the directory's lock
// held, so no private proxy can be filling it meanwhile, and before
// anything in it is changed.
func claimMode(dir string, mode Mode) error {
	switch mode {
	case ModePrivate, ModePublic:
	default:
		return fmt.Errorf("cache: mode %q: want %q or %q", mode, ModePrivate, ModePublic)
	}
	file := filepath.Join(dir, modeFile)
	data, err := os.ReadFile(file)
	recorded := Mode(strings.TrimSpace(string(data)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		recorded = ""
	case err != nil:
		return fmt.Errorf("cache: reading %s: %w", file, err)
	}
	if mode == ModePublic {
		if recorded == ModePrivate {
			return fmt.Errorf("%w: %s was filled by a private-mode proxy (with credentials), and a public proxy must never serve it; set proxy.cache.dir to another directory, or remove this one", ErrPrivateContent, dir)
		}
		if recorded == "" && !emptyCacheDir(dir) {
			return fmt.Errorf("%w: %s holds cached content of unknown origin (no %s record); set proxy.cache.dir to another directory, or remove this one", ErrPrivateContent, dir, modeFile)
		}
	}
	if recorded == mode {
		return nil
	}
	if err := securefile.WriteFile(file, []byte(string(mode)+"\n")); err != nil {
		return fmt.Errorf("cache: recording the cache mode in %s: %w", file, err)
	}
	return nil
}

// emptyCacheDir reports whether dir holds no cached content yet.
func emptyCacheDir(dir string) bool {
	for _, sub := range []string{"blobs", "repos"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err == nil && len(entries) > 0 {
			return false
		}
	}
	return true
}

// CheckWritable reports whether the cache's directory still accepts
// writes (the proxy's /readyz asks it): a file is created, written and
// removed.
func (c *Cache) CheckWritable() error {
	f, err := os.CreateTemp(c.dir, ".readyz-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	rerr := os.Remove(filepath.Clean(name))
	return errors.Join(werr, cerr, rerr)
}
