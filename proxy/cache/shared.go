package cache

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
)

// SharedTier is a second cache tier that many hosts share (see
// NewDriverTier for one on distribution's storage drivers). The local cache
// consults it on a miss, after asking the upstream whether the repository
// may read the content (Upstream.Check), and uploads every blob it filled
// from upstream to it in the background. Content read from it is verified
// like upstream content, so a corrupt shared copy is never committed.
type SharedTier interface {
	// Stat returns the size of d, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns a reader of d from the start.
	Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error)
	// Put stores d (size bytes from r). Readers of the tier must never see
	// a partial object under d's name (write elsewhere, then move).
	Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error
	// Delete removes d; the cache calls it when a copy fails verification,
	// so the next fill goes upstream instead of failing again.
	Delete(ctx context.Context, d digest.Digest) error
}

// uploadShared copies committed blob d to the shared tier in the background.
// The local entry is pinned while it is read.
func (c *Cache) uploadShared(d digest.Digest, size int64) {
	c.fillWG.Add(1)
	go func() {
		defer c.fillWG.Done()
		ctx := c.ctx
		if _, err := c.statShared(ctx, d); err == nil {
			return // another host uploaded it already
		} else if !errors.Is(err, ErrNotFound) {
			// Down or hanging: an upload would only wait on it too.
			c.stats.sharedErrors.Add(1)
			c.log.Warn("cache: shared tier unavailable, not uploading", "digest", d, "error", err)
			return
		}
		c.mu.Lock()
		e := c.entries[d]
		if e == nil {
			c.mu.Unlock()
			return // evicted already
		}
		r, err := c.openEntryLocked(ctx, e)
		if err != nil {
			c.stats.sharedErrors.Add(1)
			return
		}
		defer r.Close()
		// Read the file directly: these bytes are not served to a client.
		err = c.opts.Shared.Put(ctx, d, size, io.NewSectionReader(r.file, 0, size))
		if err != nil {
			c.stats.sharedErrors.Add(1)
			c.log.Warn("cache: upload to shared tier failed", "digest", d, "error", err)
			return
		}
		c.stats.sharedUploads.Add(1)
	}()
}
