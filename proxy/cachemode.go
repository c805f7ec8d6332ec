package proxy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// cacheModeFile, inside the cache directory, records the mode the content
// was fetched in.
const cacheModeFile = "tollgate-mode"

// ErrPrivateCacheInPublicMode: the cache directory holds content fetched
// with credentials, and a public proxy must not serve it.
var ErrPrivateCacheInPublicMode = errors.New("cache directory holds content fetched in private mode")

// CheckCacheMode guards the one way a public proxy could serve private
// content: a cache directory filled earlier by a private proxy (with
// credentials). Digests and blobs cached for a repository are served without
// asking the upstream, so a public proxy refuses such a directory. A private
// proxy may use anything (public content is public); it marks the directory
// as private before it caches anything.
func CheckCacheMode(dir string, mode config.Mode) error {
	file := filepath.Join(dir, cacheModeFile)
	data, err := os.ReadFile(file)
	recorded := strings.TrimSpace(string(data))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		recorded = ""
	case err != nil:
		return fmt.Errorf("reading %s: %w", file, err)
	}
	if mode == config.ModePublic {
		if recorded == string(config.ModePrivate) {
			return fmt.Errorf("%w: %s was filled by a private-mode proxy (with credentials), and a public proxy must never serve it; set proxy.cache.dir to another directory, or remove this one", ErrPrivateCacheInPublicMode, dir)
		}
		if recorded == "" && !emptyCacheDir(dir) {
			return fmt.Errorf("%w: %s holds cached content of unknown origin (no %s record); set proxy.cache.dir to another directory, or remove this one", ErrPrivateCacheInPublicMode, dir, cacheModeFile)
		}
	}
	want := string(mode)
	if mode == "" {
		want = string(config.ModePrivate)
	}
	if recorded == want {
		return nil
	}
	if err := securefile.WriteFile(file, []byte(want+"\n")); err != nil {
		return fmt.Errorf("recording the cache mode in %s: %w", file, err)
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
