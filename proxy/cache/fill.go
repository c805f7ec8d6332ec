package cache

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
)

// fill is one download in progress into a temp file. The fields under mu
// describe the bytes written so far; scopes, readers and entry are guarded
// by Cache.mu.
type fill struct {
	d        digest.Digest
	owner    scope // the repository whose Upstream the fill uses
	expected int64 // the size the caller expected, -1 if unknown
	tmp      string

	started chan struct{} // closed once the source is open (or failed to open)
	openErr error         // set before started is closed

	mu      sync.Mutex
	size    int64 // size the content is held to, -1 if unknown (set before started is closed)
	written int64
	done    bool
	err     error         // final error, nil on commit
	wake    chan struct{} // closed and cleared on progress; made by a waiting reader

	claim      FleetClaim         // the fleet's answer, if it was asked (fill goroutine)
	sharedMiss bool               // the shared tier answered that it has no copy (fill goroutine)
	scopes     map[scope]struct{} // repositories to link on commit (Cache.mu)
	reserved   int64              // counted in Cache.reserved (Cache.mu)
	readers    int                // open streaming readers (Cache.mu)
	entry      *entry             // set at commit (Cache.mu)
}

// openFailed reports whether the fill's source failed to open.
func (f *fill) openFailed() bool {
	select {
	case <-f.started:
		return f.openErr != nil
	default:
		return false
	}
}

// progress publishes n more bytes written.
func (f *fill) progress(n int64) {
	f.mu.Lock()
	f.written += n
	w := f.wake
	f.wake = nil
	f.mu.Unlock()
	if w != nil {
		close(w)
	}
}

// finish publishes the end of the fill: err nil means committed.
func (f *fill) finish(err error) {
	f.mu.Lock()
	f.done = true
	f.err = err
	w := f.wake
	f.wake = nil
	f.mu.Unlock()
	if w != nil {
		close(w)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// runFill is one fill, start to end: open the first source that has the
// content (Cache.sources: shared tier, then upstream), make room for it,
// copy it into a temp file while hashing, verify it, commit it. Readers
// stream from the temp file as it grows. A fill that fails keeps nothing.
func (c *Cache) runFill(f *fill, acc access) {
	defer c.fillWG.Done()
	ctx, resetIdle, stop := c.fillContext(f.d)
	defer stop()

	body, announced, src, err := c.openSource(ctx, f, &acc, resetIdle)
	if err != nil {
		c.abandon(ctx, f, err)
		return
	}
	body = &closeOnce{ReadCloser: body}
	defer body.Close()
	// Unblock a Read stuck on a silent source when the fill times out.
	stopClose := context.AfterFunc(ctx, func() { _ = body.Close() })
	defer stopClose()

	tmp, size, err := c.prepare(f, announced, src)
	if err != nil {
		c.abandon(ctx, f, err)
		return
	}
	close(f.started)

	written, err := c.copyIn(ctx, f, body, tmp, size, src, resetIdle)
	if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrSizeMismatch) {
		src.rejected(f.d)
	}
	if err == nil {
		err = c.commit(f, written)
	}
	if err != nil {
		c.abandon(ctx, f, err)
		return
	}
	c.log.Debug("cache: filled", "digest", f.d, "bytes", written, "source", src.String())
	c.evict()
	if _, fromUpstream := src.(upstreamSource); fromUpstream && c.opts.Shared != nil {
		// The fleet's lease is released once the upload ended, so that
		// hosts looking later find the shared copy.
		c.uploadShared(f.d, written, f.claim.done)
		return
	}
	f.claim.done(nil)
}

// fillContext bounds a fill: Close cancels it (once its wait is over),
// FillTimeout ends it, and FillIdleTimeout ends it when its source sends
// nothing for that long; resetIdle restarts that clock.
func (c *Cache) fillContext(d digest.Digest) (ctx context.Context, resetIdle, stop func()) {
	ctx, cancel := context.WithCancelCause(c.ctx)
	stopTimeout := context.CancelFunc(func() {})
	if c.opts.FillTimeout > 0 {
		ctx, stopTimeout = context.WithTimeoutCause(ctx, c.opts.FillTimeout,
			fmt.Errorf("cache fill of %s took longer than %s", d, c.opts.FillTimeout))
	}
	idle := c.opts.FillIdleTimeout
	timer := time.AfterFunc(idle, func() {
		cancel(fmt.Errorf("%w: no data from upstream for %s", ErrIdleTimeout, idle))
	})
	return ctx, func() { timer.Reset(idle) }, func() {
		timer.Stop()
		stopTimeout()
		cancel(nil)
	}
}

// prepare settles the content's size, makes room for it and creates its
// temp file, so that readers can open it once it returns.
func (c *Cache) prepare(f *fill, announced int64, src source) (*os.File, int64, error) {
	size, err := c.settleSize(f, announced, src)
	if err != nil {
		return nil, 0, err
	}
	if err := c.checkRoom(f.d, size); err != nil {
		return nil, 0, err
	}
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "fill-*")
	if err != nil {
		return nil, 0, noSpace(fmt.Errorf("cache: create temp file: %w", err))
	}
	f.tmp = tmp.Name()
	f.mu.Lock()
	f.size = size
	f.mu.Unlock()
	c.reserve(f, size)
	return tmp, size, nil
}

// settleSize is the size the fill will hold the content to: the one the
// caller expected, else the one the source announced (-1 if neither said).
func (c *Cache) settleSize(f *fill, announced int64, src source) (int64, error) {
	if f.expected < 0 {
		return announced, nil
	}
	if announced >= 0 && announced != f.expected {
		return 0, fmt.Errorf("%w: %s announced %d bytes for %s, expected %d", ErrSizeMismatch, src, announced, f.d, f.expected)
	}
	return f.expected, nil
}

// checkRoom refuses content the cache can never hold: larger than the
// whole cache (making room would empty it for nothing, and an upstream
// lying about Content-Length could do so at will), or larger than the free
// space of a disk filled by something else (a CI host's images). Both are
// found before any byte reached a client, so that the caller can serve the
// blob past the cache instead of cutting every pull of it.
func (c *Cache) checkRoom(d digest.Digest, size int64) error {
	if c.opts.MaxSize > 0 && size > c.opts.MaxSize {
		return fmt.Errorf("%w: %s is %d bytes, more than the whole cache (%d bytes); it is not cached", ErrTooLarge, d, size, c.opts.MaxSize)
	}
	if size > 0 {
		if free, err := freeSpace(filepath.Join(c.dir, "tmp")); err == nil && free < size {
			return fmt.Errorf("%w: %s needs %d bytes, %s has %d free", ErrNoSpace, d, size, c.dir, free)
		}
	}
	return nil
}

// reserve counts a fill of known size against MaxSize and evicts to make
// room for it before it is written, so that MaxSize bounds the disk.
func (c *Cache) reserve(f *fill, size int64) {
	if size <= 0 || c.opts.MaxSize <= 0 {
		return
	}
	c.mu.Lock()
	f.reserved = size
	c.reserved += size
	c.mu.Unlock()
	c.evict()
}

// unreserveLocked returns a fill's reservation (c.mu held).
func (c *Cache) unreserveLocked(f *fill) {
	c.reserved -= f.reserved
	f.reserved = 0
}

// copyIn copies the source's body into tmp, hashing as it goes and
// publishing progress to the fill's readers, then checks what arrived
// (size, digest) and makes it durable. It always closes tmp.
func (c *Cache) copyIn(ctx context.Context, f *fill, body io.Reader, tmp *os.File, size int64, src source, resetIdle func()) (int64, error) {
	h := f.d.Algorithm().Hash()
	written, err := c.copyBody(f, body, tmp, h, size, src, resetIdle)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil && size >= 0 && written != size {
		err = fmt.Errorf("%w: %s sent %d of %d bytes for %s", ErrSizeMismatch, src, written, size, f.d)
	}
	if err == nil {
		if got := digest.NewDigest(f.d.Algorithm(), h); got != f.d {
			err = fmt.Errorf("%w: %s content for %s hashes to %s", ErrDigestMismatch, src, f.d, got)
		}
	}
	if err == nil {
		err = noSpace(tmp.Sync())
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return written, err
}

// copyBody is copyIn's loop: it stops at the end of the body, or at the
// first byte past the size the content may have.
func (c *Cache) copyBody(f *fill, body io.Reader, tmp *os.File, h hash.Hash, size int64, src source, resetIdle func()) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var written int64
	wb := writeback{fd: int(tmp.Fd())}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			resetIdle()
			if size >= 0 && written+int64(n) > size {
				return written, fmt.Errorf("%w: %s sent more than %d bytes for %s", ErrSizeMismatch, src, size, f.d)
			}
			if size < 0 && c.opts.MaxSize > 0 && written+int64(n) > c.opts.MaxSize {
				// Unannounced size: it can never be kept once past the whole
				// budget, and an endless body would fill the disk.
				return written, fmt.Errorf("%w: %s from upstream (size not announced) outgrew the whole cache (%d bytes)", ErrTooLarge, f.d, c.opts.MaxSize)
			}
			if _, werr := tmp.Write(buf[:n]); werr != nil {
				return written, noSpace(fmt.Errorf("cache: write temp file: %w", werr))
			}
			h.Write(buf[:n])
			written += int64(n)
			wb.progress(written)
			src.count(int64(n))
			f.progress(int64(n))
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, fmt.Errorf("cache: read %s from %s after %d bytes: %w", f.d, src, written, rerr)
		}
	}
}

// commit moves verified content into place and into the index, links it
// to every repository that asked for it during the fill, and hands the
// fill's readers over to the committed entry. It is the one place a fill
// writes the cache.
func (c *Cache) commit(f *fill, written int64) error {
	if err := commitFile(f.tmp, c.blobPath(f.d)); err != nil {
		return fmt.Errorf("cache: commit %s: %w", f.d, err)
	}
	c.mu.Lock()
	e, added := c.indexLocked(f.d, written)
	if !added {
		c.lru.MoveToFront(e.elem)
	}
	var newLinks []link
	for s := range f.scopes {
		l := link{s, kindBlob}
		if _, ok := e.links[l]; !ok {
			e.links[l] = ""
			newLinks = append(newLinks, l)
		}
	}
	e.refs += f.readers
	f.entry = e
	delete(c.fills, f.d)
	c.unreserveLocked(f)
	c.mu.Unlock()

	for _, l := range newLinks {
		if err := c.writeLink(l, f.d, ""); err != nil {
			c.log.Warn("cache: persist link", "digest", f.d, "repository", l.scope.String(), "error", err)
		}
	}
	f.finish(nil)
	return nil
}

// indexLocked adds committed content d of size bytes to the index, or
// finds it there already (c.mu held). Content enters the index only here.
func (c *Cache) indexLocked(d digest.Digest, size int64) (e *entry, added bool) {
	if e := c.entries[d]; e != nil {
		return e, false
	}
	e = &entry{d: d, size: size, touched: time.Now(), links: map[link]string{}}
	e.elem = c.lru.PushFront(e)
	c.entries[d] = e
	c.total += size
	return e, true
}

// abandon ends a fill that did not commit: its temp file and reservation
// go, and every reader (and a caller still waiting for the source to open)
// gets err, or the cause that ended the fill's context.
func (c *Cache) abandon(ctx context.Context, f *fill, err error) {
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		err = cause
	}
	c.mu.Lock()
	delete(c.fills, f.d)
	c.unreserveLocked(f)
	c.mu.Unlock()
	if f.tmp != "" {
		_ = os.Remove(f.tmp)
	}
	c.stats.fillErrors.Add(1)
	select {
	case <-f.started:
	default:
		f.openErr = err
		close(f.started)
	}
	f.finish(err)
	f.claim.done(err)
	c.log.Warn("cache: fill failed, nothing cached", "digest", f.d, "error", err)
}

// closeOnce lets the fill close its source from a timeout and on return.
type closeOnce struct {
	io.ReadCloser
	once sync.Once
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { _ = c.ReadCloser.Close() })
	return nil
}

// noSpace marks a full disk (or quota) as ErrNoSpace.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// commitFile renames a verified, synced temp file into place and syncs the
// directory so the rename survives a crash.
func commitFile(tmp, final string) error {
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return serr
	}
	return cerr
}
