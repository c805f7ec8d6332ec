package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

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

// staleUploadRemover is a SharedTier that can remove the partial uploads of
// hosts that died mid-upload (DriverTier).
type staleUploadRemover interface {
	RemoveStaleUploads(ctx context.Context, olderThan time.Duration) (int, error)
}

// sweepShared removes stale partial uploads from the shared tier, in the
// background (a listing of an object store can take a while). It is not
// waited for by Close: it holds nothing of the local cache, and a tier that
// hangs in the kernel must not hold the proxy's shutdown.
func (c *Cache) sweepShared() {
	r, ok := c.opts.Shared.(staleUploadRemover)
	if !ok {
		return
	}
	go func() {
		n, err := r.RemoveStaleUploads(c.ctx, StaleUploadAge)
		if err != nil {
			c.log.Warn("cache: removing stale uploads from the shared tier", "error", err)
		}
		if n > 0 {
			c.log.Info("cache: removed partial uploads of hosts that died mid-upload from the shared tier", "count", n)
		}
	}()
}

// uploadShared copies committed blob d to the shared tier in the background.
// The local entry is pinned while it is read.
// done is called when the upload ended, whatever its outcome.
func (c *Cache) uploadShared(d digest.Digest, size int64, done func(error)) {
	c.fillWG.Add(1)
	go func() {
		defer c.fillWG.Done()
		defer done(nil)
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
		// An upload that stops making progress (a tier that stopped
		// answering) is cancelled after FillIdleTimeout: it pins the blob
		// against eviction and holds Close for as long as it runs.
		idle := c.opts.FillIdleTimeout
		uctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		timer := time.AfterFunc(idle, func() {
			cancel(fmt.Errorf("%w: the shared tier took no data for %s", ErrIdleTimeout, idle))
		})
		defer timer.Stop()
		// Read the file directly: these bytes are not served to a client.
		src := &progressReader{r: io.NewSectionReader(r.file, 0, size), progress: func() { timer.Reset(idle) }}
		err = c.opts.Shared.Put(uctx, d, size, src)
		if cause := context.Cause(uctx); err != nil && cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		if err != nil {
			c.stats.sharedErrors.Add(1)
			c.log.Warn("cache: upload to shared tier failed", "digest", d, "error", err)
			return
		}
		c.stats.sharedUploads.Add(1)
	}()
}

// progressReader calls progress after every read that returned data.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}
