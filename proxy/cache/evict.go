package cache

import (
	"os"
	"path/filepath"
)

// evict removes least-recently-used entries that no reader holds until the
// committed total plus the announced size of fills in progress is within
// MaxSize. Fills in progress are not entries, so they are never evicted.
//
// Under the lock a victim is dropped from the index, its links removed and
// its file renamed into tmp/; the (possibly slow) unlink of the data happens
// outside. Doing the renames under the lock means a new fill of the same
// digest, which can only start after the drop, never has its fresh file
// removed by an eviction still in progress.
func (c *Cache) evict() {
	if c.opts.MaxSize <= 0 {
		return
	}
	var trash []string
	c.mu.Lock()
	for el := c.lru.Back(); el != nil && c.total+c.reserved > c.opts.MaxSize; {
		e := el.Value.(*entry)
		prev := el.Prev()
		if e.refs == 0 {
			c.dropLocked(e)
			for l := range e.links {
				p := c.linkPath(l.scope, l.kind, e.d)
				_ = os.Remove(p)
				_ = os.Remove(filepath.Dir(p)) // only succeeds when empty
			}
			t := filepath.Join(c.dir, "tmp", "evicted-"+e.d.Encoded())
			if err := os.Rename(c.blobPath(e.d), t); err != nil && !os.IsNotExist(err) {
				c.log.Warn("cache: evict", "digest", e.d, "error", err)
			} else {
				trash = append(trash, t)
			}
			c.stats.evictions.Add(1)
			c.stats.evictedBytes.Add(e.size)
			c.log.Debug("cache: evicted", "digest", e.d, "bytes", e.size)
		}
		el = prev
	}
	c.mu.Unlock()
	for _, t := range trash {
		_ = os.Remove(t)
	}
}

// dropLocked forgets e (c.mu held).
func (c *Cache) dropLocked(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.d)
	c.total -= e.size
}
