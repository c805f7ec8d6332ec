package cache

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// Verify re-hashes every committed file and removes those that no longer
// match their digest (disk or filesystem damage, or a file changed by hand),
// with their repository links. It is not needed for correctness after a
// crash (only verified files are ever renamed into place); it is a check an
// operator runs (tollgate doctor) when the disk is suspect. It reads every
// byte, so it takes as long as reading the cache. Content opened by readers
// while Verify runs is not re-checked for them.
func (c *Cache) Verify(ctx context.Context) (checked int, removed []digest.Digest, err error) {
	c.mu.Lock()
	ds := make([]digest.Digest, 0, len(c.entries))
	for d := range c.entries {
		ds = append(ds, d)
	}
	c.mu.Unlock()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for _, d := range ds {
		if err := ctx.Err(); err != nil {
			return checked, removed, err
		}
		ok, err := c.verifyOne(d, *bp)
		if err != nil {
			return checked, removed, err
		}
		checked++
		if !ok {
			removed = append(removed, d)
		}
	}
	return checked, removed, nil
}

// verifyOne hashes d's file; a mismatch (or a missing file) drops the entry.
func (c *Cache) verifyOne(d digest.Digest, buf []byte) (bool, error) {
	c.mu.Lock()
	e := c.entries[d]
	if e == nil {
		c.mu.Unlock()
		return true, nil // evicted meanwhile
	}
	e.refs++
	c.mu.Unlock()
	good := false
	f, err := os.Open(c.blobPath(d))
	if err == nil {
		h := d.Algorithm().Hash()
		var n int64
		n, err = io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
		_ = f.Close()
		good = err == nil && n == e.size && digest.NewDigest(d.Algorithm(), h) == d
	}
	if err != nil && !os.IsNotExist(err) {
		c.mu.Lock()
		e.refs--
		c.mu.Unlock()
		return false, err
	}
	c.mu.Lock()
	e.refs--
	c.mu.Unlock()
	if good {
		return true, nil
	}
	return !c.dropDamaged(e), nil
}

// dropDamaged removes e, found damaged on disk, with its links, unless it
// was dropped meanwhile; it reports whether it removed it. Readers that
// have the file open keep their descriptor.
func (c *Cache) dropDamaged(e *entry) bool {
	c.mu.Lock()
	if c.entries[e.d] != e {
		c.mu.Unlock()
		return false
	}
	c.dropLocked(e)
	for l := range e.links {
		_ = os.Remove(c.linkPath(l.scope, l.kind, e.d))
	}
	t := filepath.Join(c.dir, "tmp", "damaged-"+e.d.Encoded())
	_ = os.Rename(c.blobPath(e.d), t)
	c.mu.Unlock()
	_ = os.Remove(t)
	c.log.Warn("cache: content did not verify, removed", "digest", e.d)
	return true
}
