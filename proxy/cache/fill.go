package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
)

// Upstream is where Fetch gets content it does not have, for one
// repository. The functions are called from the fill's own goroutine with
// the fill's context (detached from the caller's, bounded by the fill
// timeouts), or, for Check, with the caller's context.
type Upstream struct {
	// Open starts the download (a GET of the blob with the repository's
	// credentials). It returns the body and its size (the response's
	// Content-Length), or -1 if unknown. A non-nil error is handed to the
	// callers of Fetch unchanged. The body's Close is called once, possibly
	// concurrently with a Read when the fill times out (http bodies allow it).
	Open func(ctx context.Context) (body io.ReadCloser, size int64, err error)
	// Check asks the upstream whether this repository has the content (a
	// HEAD with the repository's credentials): nil means yes. It is called
	// when the content is cached, or being filled, for another repository
	// only, and before reading from the shared tier. If Check is nil, Open
	// is used instead: its response proves access, and the body is closed
	// unread.
	Check func(ctx context.Context) error
}

func (u Upstream) check(ctx context.Context) error {
	if u.Check != nil {
		return u.Check(ctx)
	}
	if u.Open == nil {
		return errors.New("cache: Upstream has neither Open nor Check")
	}
	body, _, err := u.Open(ctx)
	if err != nil {
		return err
	}
	return body.Close()
}

// fill is one download in progress into a temp file. The fields under mu
// describe the bytes written so far; scopes, readers and entry are guarded
// by Cache.mu.
type fill struct {
	d     digest.Digest
	owner scope // the repository whose Upstream.Open the fill uses
	tmp   string

	started chan struct{} // closed once the source is open (or failed to open)
	openErr error         // set before started is closed

	mu      sync.Mutex
	size    int64 // expected size, -1 if unknown (set before started is closed)
	written int64
	done    bool
	err     error         // final error, nil on commit
	wake    chan struct{} // closed and cleared on progress; made by a waiting reader

	scopes   map[scope]struct{} // repositories to link on commit (Cache.mu)
	reserved int64              // counted in Cache.reserved (Cache.mu)
	readers  int                // open streaming readers (Cache.mu)
	entry    *entry             // set at commit (Cache.mu)
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

// Fetch returns a reader of blob d for (host, repo).
//
//   - Cached and linked to the repository: a reader of the committed file.
//   - Cached, or being filled, for another repository: up.Check first, then
//     as above (the repository is linked).
//   - Not cached: the first caller starts one fill in its own goroutine
//     (up.Open); it and every concurrent caller get readers that stream from
//     the partial temp file as bytes arrive. Fetch returns once the upstream
//     answered, so an upstream error (404, 401, ...) is returned here.
//
// size is the expected size, or -1 if unknown. ctx bounds this call and the
// returned reader's waits; cancelling it never aborts the fill, which runs to
// completion (or to its timeouts) and commits for later callers.
//
// A streaming reader's final Read returns ErrFillFailed (wrapping the cause)
// instead of io.EOF if the fill does not verify; see Reader. A caller that
// joins a fill which fails before its reader is open gets that error from
// Fetch itself.
func (c *Cache) Fetch(ctx context.Context, host, repo string, d digest.Digest, size int64, up Upstream) (*Reader, error) {
	s, err := newScope(host, repo)
	if err != nil {
		return nil, err
	}
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	if up.Open == nil {
		return nil, errors.New("cache: Fetch needs Upstream.Open")
	}
	checked := false
	for attempt := 0; ; attempt++ {
		if attempt > 10 {
			return nil, fmt.Errorf("cache: fetch %s: content keeps disappearing (evicted while fetching?)", d)
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if e := c.entries[d]; e != nil {
			if _, ok := e.links[link{s, kindBlob}]; ok {
				r, err := c.openEntryLocked(ctx, e) // unlocks
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err == nil {
					c.stats.hits.Add(1)
				}
				return r, err
			}
			c.mu.Unlock()
			if checked {
				if err := c.Link(host, repo, d); err != nil && !errors.Is(err, ErrNotFound) {
					return nil, err
				}
				continue
			}
			if err := up.check(ctx); err != nil {
				return nil, fmt.Errorf("cache: %s has no access to %s: %w", s, d, err)
			}
			checked = true
			continue
		}
		if f := c.fills[d]; f != nil {
			if _, ok := f.scopes[s]; !ok {
				if !checked {
					c.mu.Unlock()
					if err := up.check(ctx); err != nil {
						return nil, fmt.Errorf("cache: %s has no access to %s: %w", s, d, err)
					}
					checked = true
					continue
				}
				f.scopes[s] = struct{}{}
			}
			f.readers++
			c.mu.Unlock()
			c.stats.joins.Add(1)
			r, err := c.streamReader(ctx, f)
			if err != nil && f.owner != s && f.openFailed() {
				// The upstream refused the repository that started the
				// fill; this one may still read the blob: try on its own.
				continue
			}
			return r, err
		}
		// Miss: start the one fill for d.
		f := &fill{
			d:       d,
			owner:   s,
			size:    size,
			started: make(chan struct{}),
			scopes:  map[scope]struct{}{s: {}},
			readers: 1,
		}
		c.fills[d] = f
		c.fillWG.Add(1)
		c.mu.Unlock()
		c.stats.misses.Add(1)
		go c.runFill(f, size, up)
		return c.streamReader(ctx, f)
	}
}

// streamReader waits until f's source is open and returns a reader of its
// temp file. The caller has counted itself in f.readers.
func (c *Cache) streamReader(ctx context.Context, f *fill) (*Reader, error) {
	release := func() {
		c.mu.Lock()
		c.releaseFillReaderLocked(f)
		c.mu.Unlock()
	}
	select {
	case <-f.started:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	if f.openErr != nil {
		release()
		return nil, f.openErr
	}
	file, err := os.Open(f.tmp)
	if errors.Is(err, fs.ErrNotExist) {
		// The temp file is gone: either renamed into place (verified, and
		// pinned for us because we count in f.readers) or removed by a
		// failed fill. Rename is atomic, so one of the two names exists
		// unless the fill failed.
		file, err = os.Open(c.blobPath(f.d))
	}
	if err != nil {
		r := &Reader{c: c, ctx: ctx, fill: f}
		_, ferr := r.waitDone()
		release()
		if ferr != nil {
			return nil, ferr
		}
		return nil, fmt.Errorf("cache: open fill of %s: %w", f.d, err)
	}
	return &Reader{c: c, ctx: ctx, d: f.d, file: file, fill: f, size: -1}, nil
}

// releaseFillReaderLocked drops one streaming reader of f (c.mu held).
func (c *Cache) releaseFillReaderLocked(f *fill) {
	if f.entry != nil {
		f.entry.refs--
		return
	}
	f.readers--
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// runFill downloads f into a temp file, verifies it and commits it.
func (c *Cache) runFill(f *fill, size int64, up Upstream) {
	defer c.fillWG.Done()
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	if c.opts.FillTimeout > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, c.opts.FillTimeout,
			fmt.Errorf("cache fill of %s took longer than %s", f.d, c.opts.FillTimeout))
		defer stop()
	}
	idle := c.opts.FillIdleTimeout
	timer := time.AfterFunc(idle, func() {
		cancel(fmt.Errorf("%w: no data from upstream for %s", ErrIdleTimeout, idle))
	})
	defer timer.Stop()

	fail := func(err error, opened bool) {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		c.mu.Lock()
		delete(c.fills, f.d)
		c.reserved -= f.reserved
		f.reserved = 0
		c.mu.Unlock()
		if f.tmp != "" {
			_ = os.Remove(f.tmp)
		}
		c.stats.fillErrors.Add(1)
		if !opened {
			f.openErr = err
			close(f.started)
		}
		f.finish(err)
		c.log.Warn("cache: fill failed, nothing cached", "digest", f.d, "error", err)
	}

	src, srcSize, fromShared, err := c.openSource(ctx, f, size, up, func() { timer.Reset(idle) })
	if err != nil {
		fail(err, false)
		return
	}
	var closeOnce sync.Once
	closeSrc := func() { closeOnce.Do(func() { _ = src.Close() }) }
	defer closeSrc()
	// Unblock a Read stuck on a silent upstream when the fill times out.
	stopClose := context.AfterFunc(ctx, closeSrc)
	defer stopClose()

	source := "upstream"
	if fromShared {
		source = "shared tier"
	}
	if size < 0 {
		size = srcSize
	} else if srcSize >= 0 && srcSize != size {
		fail(fmt.Errorf("%w: %s announced %d bytes for %s, expected %d", ErrSizeMismatch, source, srcSize, f.d, size), false)
		return
	}
	if c.opts.MaxSize > 0 && size > c.opts.MaxSize {
		// Making room would empty the cache for a blob it can never keep
		// (and an upstream lying about Content-Length could do it at will).
		fail(fmt.Errorf("%w: %s is %d bytes, more than the whole cache (%d bytes); it is not cached", ErrTooLarge, f.d, size, c.opts.MaxSize), false)
		return
	}
	if size > 0 {
		// A disk filled by something else (a CI host's images): fail now,
		// before any byte reached a client, so that the caller can serve
		// the blob past the cache instead of cutting every pull of it.
		if free, err := freeSpace(filepath.Join(c.dir, "tmp")); err == nil && free < size {
			fail(fmt.Errorf("%w: %s needs %d bytes, %s has %d free", ErrNoSpace, f.d, size, c.dir, free), false)
			return
		}
	}
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "fill-*")
	if err != nil {
		fail(noSpace(fmt.Errorf("cache: create temp file: %w", err)), false)
		return
	}
	f.tmp = tmp.Name()
	f.mu.Lock()
	f.size = size
	f.mu.Unlock()
	if size > 0 && c.opts.MaxSize > 0 {
		c.mu.Lock()
		f.reserved = size
		c.reserved += size
		c.mu.Unlock()
		c.evict() // make room before writing
	}
	close(f.started)

	h := f.d.Algorithm().Hash()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var written int64
	var copyErr error
	wb := writeback{fd: int(tmp.Fd())}
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			timer.Reset(idle)
			if size >= 0 && written+int64(n) > size {
				copyErr = fmt.Errorf("%w: %s sent more than %d bytes for %s", ErrSizeMismatch, source, size, f.d)
				break
			}
			if size < 0 && c.opts.MaxSize > 0 && written+int64(n) > c.opts.MaxSize {
				// Unannounced size: it can never be kept once past the whole
				// budget, and an endless body would fill the disk.
				copyErr = fmt.Errorf("%w: %s from upstream (size not announced) outgrew the whole cache (%d bytes)", ErrTooLarge, f.d, c.opts.MaxSize)
				break
			}
			if _, werr := tmp.Write(buf[:n]); werr != nil {
				copyErr = noSpace(fmt.Errorf("cache: write temp file: %w", werr))
				break
			}
			h.Write(buf[:n])
			written += int64(n)
			wb.progress(written)
			if fromShared {
				c.stats.bytesFromShared.Add(int64(n))
			} else {
				c.stats.bytesFromUpstream.Add(int64(n))
			}
			f.progress(int64(n))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			copyErr = fmt.Errorf("cache: read %s from %s after %d bytes: %w", f.d, source, written, rerr)
			break
		}
	}
	if copyErr == nil && ctx.Err() != nil {
		copyErr = ctx.Err()
	}
	if copyErr == nil && size >= 0 && written != size {
		copyErr = fmt.Errorf("%w: %s sent %d of %d bytes for %s", ErrSizeMismatch, source, written, size, f.d)
	}
	if copyErr == nil {
		if got := digest.NewDigest(f.d.Algorithm(), h); got != f.d {
			copyErr = fmt.Errorf("%w: %s content for %s hashes to %s", ErrDigestMismatch, source, f.d, got)
		}
	}
	if copyErr == nil {
		copyErr = noSpace(tmp.Sync())
	}
	if cerr := tmp.Close(); copyErr == nil && cerr != nil {
		copyErr = cerr
	}
	if copyErr != nil {
		// A corrupt shared copy is deleted before the clients hear of the
		// failure, so that their retry goes upstream; bounded, so that a
		// tier that hangs does not hold them.
		if fromShared && (errors.Is(copyErr, ErrDigestMismatch) || errors.Is(copyErr, ErrSizeMismatch)) {
			c.log.Warn("cache: shared tier copy is corrupt, deleting it", "digest", f.d, "error", copyErr)
			_, cancel, err := sharedCall(c.ctx, c.opts.SharedTimeout, func(ctx context.Context) (struct{}, error) {
				return struct{}{}, c.opts.Shared.Delete(ctx, f.d)
			}, nil)
			if err != nil {
				c.log.Warn("cache: delete corrupt shared copy", "digest", f.d, "error", err)
			} else {
				cancel()
			}
		}
		fail(copyErr, true)
		return
	}
	final := c.blobPath(f.d)
	if err := commitFile(f.tmp, final); err != nil {
		fail(fmt.Errorf("cache: commit %s: %w", f.d, err), true)
		return
	}

	now := time.Now()
	c.mu.Lock()
	e := c.entries[f.d]
	if e == nil {
		e = &entry{d: f.d, size: written, touched: now, links: map[link]string{}}
		e.elem = c.lru.PushFront(e)
		c.entries[f.d] = e
		c.total += written
	} else {
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
	c.reserved -= f.reserved
	f.reserved = 0
	c.mu.Unlock()

	for _, l := range newLinks {
		if err := c.writeLink(l, f.d, ""); err != nil {
			c.log.Warn("cache: persist link", "digest", f.d, "repository", l.scope.String(), "error", err)
		}
	}
	f.finish(nil)
	c.log.Debug("cache: filled", "digest", f.d, "bytes", written, "shared", fromShared)
	c.evict()
	if c.opts.Shared != nil && !fromShared {
		c.uploadShared(f.d, written)
	}
}

// openSource opens the shared tier's copy if there is one (after
// up.Check), else the upstream. Each shared-tier call is bounded by
// Options.SharedTimeout: a tier that fails or does not answer in time sends
// the fill upstream (and restarts its idle timer, which waiting for the tier
// must not use up).
func (c *Cache) openSource(ctx context.Context, f *fill, size int64, up Upstream, resetIdle func()) (io.ReadCloser, int64, bool, error) {
	if sh := c.opts.Shared; sh != nil {
		n, err := c.statShared(ctx, f.d)
		switch {
		case err == nil && size >= 0 && n != size:
			// Not the content (a truncated object): never read it, and
			// delete it so that no host tries it again.
			c.log.Warn("cache: shared tier copy has the wrong size, deleting it and going upstream", "digest", f.d, "size", n, "expected", size)
			_, cancel, err := sharedCall(ctx, c.opts.SharedTimeout, func(ctx context.Context) (struct{}, error) {
				return struct{}{}, sh.Delete(ctx, f.d)
			}, nil)
			if err != nil {
				c.log.Warn("cache: delete wrong-size shared copy", "digest", f.d, "error", err)
			} else {
				cancel()
			}
		case err == nil:
			if err := up.check(ctx); err != nil {
				return nil, 0, false, err
			}
			rc, cancel, err := sharedCall(ctx, c.opts.SharedTimeout, func(ctx context.Context) (io.ReadCloser, error) {
				return sh.Open(ctx, f.d)
			}, func(rc io.ReadCloser) { _ = rc.Close() })
			if err == nil {
				c.stats.sharedHits.Add(1)
				return &cancelOnClose{ReadCloser: rc, cancel: cancel}, n, true, nil
			}
			c.log.Warn("cache: shared tier read failed, going upstream", "digest", f.d, "error", err)
		case !errors.Is(err, ErrNotFound):
			c.log.Warn("cache: shared tier unavailable, going upstream", "digest", f.d, "error", err)
		}
		resetIdle()
	}
	rc, n, err := up.Open(ctx)
	return rc, n, false, err
}

// statShared is SharedTier.Stat bounded by Options.SharedTimeout.
func (c *Cache) statShared(ctx context.Context, d digest.Digest) (int64, error) {
	n, cancel, err := sharedCall(ctx, c.opts.SharedTimeout, func(ctx context.Context) (int64, error) {
		return c.opts.Shared.Stat(ctx, d)
	}, nil)
	if err == nil {
		cancel()
	}
	return n, err
}

// errSharedTimeout: the shared tier did not answer within SharedTimeout.
var errSharedTimeout = errors.New("shared tier did not answer in time")

// sharedCall runs call for at most timeout (or until ctx ends). A tier that
// hangs in the kernel (a hard NFS mount whose server is gone) ignores its
// context, so call runs in a goroutine of its own that is left behind on
// timeout; late, if not nil, receives what it returns after all, to release
// it. On success the caller owns the returned cancel (the context call ran
// with, which a reader it opened may still need).
func sharedCall[T any](ctx context.Context, timeout time.Duration, call func(context.Context) (T, error), late func(T)) (T, context.CancelFunc, error) {
	cctx, cancel := context.WithCancel(ctx)
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := call(cctx)
		ch <- result{v, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case r := <-ch:
		if r.err != nil {
			cancel()
			return r.v, nil, r.err
		}
		return r.v, cancel, nil
	case <-t.C:
		err = fmt.Errorf("%w (%s)", errSharedTimeout, timeout)
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	cancel()
	go func() {
		if r := <-ch; r.err == nil && late != nil {
			late(r.v)
		}
	}()
	var zero T
	return zero, nil, err
}

// cancelOnClose releases the context a shared-tier reader was opened with.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *cancelOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
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
