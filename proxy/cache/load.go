package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/securefile"
)

// tempPrefixes name the files the cache itself puts in tmp/: fills and
// stored manifests in progress, evicted and damaged content awaiting unlink.
var tempPrefixes = []string{"fill-", "put-", "evicted-", "damaged-"}

// load prepares the directory and rebuilds the in-memory index from it:
// leftovers of a previous run go, committed content is indexed in its
// last-use order, then the links of each repository to it.
func (c *Cache) load() error {
	tmp := filepath.Join(c.dir, "tmp")
	for _, d := range []string{tmp, filepath.Join(c.dir, "blobs"), filepath.Join(c.dir, "repos")} {
		if err := securefile.MkdirPrivate(d); err != nil {
			return fmt.Errorf("cache: %w", err)
		}
	}
	if err := c.removeLeftovers(tmp); err != nil {
		return err
	}
	found, err := c.scanContent()
	if err != nil {
		return err
	}
	c.indexByLastUse(found)
	if err := c.scanLinks(); err != nil {
		return err
	}
	c.log.Debug("cache: loaded", "dir", c.dir, "entries", len(c.entries), "bytes", c.total)
	return nil
}

// removeLeftovers removes partial downloads and trash from tmp/: only the
// files the cache names itself, so that a cache directory set to a place
// that holds other things (a home directory's tmp/) loses none of them.
func (c *Cache) removeLeftovers(tmp string) error {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("cache: remove partial downloads in %s: %w", tmp, err)
	}
	for _, de := range entries {
		own := false
		for _, p := range tempPrefixes {
			own = own || strings.HasPrefix(de.Name(), p)
		}
		if !own || !de.Type().IsRegular() {
			c.log.Warn("cache: leaving a file that is not the cache's own in its tmp directory; proxy.cache.dir should be a directory of its own",
				"path", filepath.Join(tmp, de.Name()))
			continue
		}
		if err := os.Remove(filepath.Join(tmp, de.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cache: remove partial download: %w", err)
		}
	}
	return nil
}

// scanContent finds the committed content in blobs/.
func (c *Cache) scanContent() ([]*entry, error) {
	var found []*entry
	blobs := filepath.Join(c.dir, "blobs")
	err := filepath.WalkDir(blobs, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			return nil
		}
		if e := c.contentEntry(blobs, path, de); e != nil {
			found = append(found, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache: read index %s: %w", blobs, err)
	}
	return found, nil
}

// contentEntry is the entry for one file in blobs/, or nil for a file that
// is not committed content (left alone) or cannot be (removed).
func (c *Cache) contentEntry(blobs, path string, de fs.DirEntry) *entry {
	rel, _ := filepath.Rel(blobs, path)
	parts := strings.Split(filepath.ToSlash(rel), "/") // alg, hex[:2], hex
	if len(parts) != 3 {
		c.log.Warn("cache: ignoring unexpected file", "path", path)
		return nil
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
	if d.Validate() != nil || parts[1] != parts[2][:2] {
		c.log.Warn("cache: ignoring unexpected file", "path", path)
		return nil
	}
	fi, err := de.Info()
	if err != nil {
		return nil // removed under us
	}
	// Cheap sanity check: a committed file was fsynced before its rename,
	// so an empty file is only valid for the digest of empty content.
	if fi.Size() == 0 && d != d.Algorithm().FromBytes(nil) {
		c.log.Warn("cache: removing empty content file", "digest", d)
		_ = os.Remove(path)
		return nil
	}
	// The file's mtime is its persisted last use (see touch).
	return &entry{d: d, size: fi.Size(), touched: fi.ModTime(), links: map[link]string{}}
}

// indexByLastUse adds found content to the index, most recently used at
// the front of the LRU list.
func (c *Cache) indexByLastUse(found []*entry) {
	sort.Slice(found, func(i, j int) bool { return found[i].touched.Before(found[j].touched) })
	for _, e := range found { // oldest first: the newest ends up in front
		e.elem = c.lru.PushFront(e)
		c.entries[e.d] = e
		c.total += e.size
	}
}

// scanLinks reads the repositories' links in repos/ into the index.
func (c *Cache) scanLinks() error {
	repos := filepath.Join(c.dir, "repos")
	err := filepath.WalkDir(repos, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.IsDir() {
			c.loadLinkFile(repos, path, de)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: read index %s: %w", repos, err)
	}
	return nil
}

// loadLinkFile reads one file under repos/:
//
//	host, repo..., _blobs|_manifests, alg, hex   a link
//	host, repo..., _tags, tag                    a tag record (read on demand)
//
// A link to content that is not committed is removed, as is a manifest
// link without a usable media type; anything else is left alone.
func (c *Cache) loadLinkFile(repos, path string, de fs.DirEntry) {
	rel, _ := filepath.Rel(repos, path)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	n := len(parts)
	if n >= 4 && parts[n-2] == "_tags" {
		if strings.HasPrefix(de.Name(), ".") && strings.Contains(de.Name(), ".tmp-") {
			_ = os.Remove(path) // an interrupted atomic write (securefile.WriteFile)
		}
		return
	}
	if n < 5 || (parts[n-3] != kindBlob.dir() && parts[n-3] != kindManifest.dir()) {
		// Not the cache's (its atomic writes land in _tags and
		// _manifests): left alone.
		c.log.Warn("cache: ignoring unexpected file", "path", path)
		return
	}
	s, err := newScope(parts[0], strings.Join(parts[1:n-3], "/"))
	if err != nil {
		c.log.Warn("cache: ignoring unexpected file", "path", path)
		return
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[n-2]), parts[n-1])
	e := c.entries[d]
	if e == nil {
		_ = os.Remove(path) // content was evicted or never committed
		return
	}
	if parts[n-3] == kindBlob.dir() {
		e.links[link{s, kindBlob}] = ""
		return
	}
	mt, err := readMediaType(path)
	if err != nil {
		// Empty or garbage after a crash (or changed by hand): serving the
		// manifest with that Content-Type would break every pull of it.
		// Dropped; the next request stores it again from upstream.
		c.log.Warn("cache: removing unreadable manifest link", "path", path, "error", err)
		_ = os.Remove(path)
		return
	}
	e.links[link{s, kindManifest}] = mt
}
