package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Reader reads one blob, either a committed file (Cached reports true) or a
// fill in progress that it follows as bytes arrive. It implements
// io.ReadSeekCloser and io.ReaderAt, so http.ServeContent can serve ranges
// from it; io.WriterTo on a committed blob lets the kernel copy the file
// (sendfile) when the destination is a socket.
//
// A streaming Reader never reports io.EOF before the content has been
// verified and committed. If the fill fails (truncated or corrupt upstream
// response, timeout), Read returns an error wrapping ErrFillFailed and the
// cause, never a clean io.EOF: an HTTP handler must then abort the response
// (panic(http.ErrAbortHandler)) rather than end it normally. When the size
// is known, the last byte is withheld until verification, so even a
// consumer that reads exactly Size bytes (io.CopyN, http.ServeContent)
// cannot deliver a complete corrupt blob.
//
// Waits honour the context given to Fetch; cancelling it stops this reader
// only, never the fill. A Reader is not safe for concurrent use, except
// ReadAt. Close it to release it (an open reader pins the blob against
// eviction).
type Reader struct {
	c      *Cache
	ctx    context.Context
	d      digest.Digest
	file   *os.File
	off    int64
	size   int64  // committed size; -1 while streaming
	entry  *entry // committed: released on Close
	fill   *fill  // streaming
	closed bool
}

// Reader is what http.ServeContent and io.Copy need, and WriterTo keeps
// sendfile for committed content.
var (
	_ io.ReadSeekCloser = (*Reader)(nil)
	_ io.ReaderAt       = (*Reader)(nil)
	_ io.WriterTo       = (*Reader)(nil)
)

// openEntryLocked pins e and returns a reader of its file. Called with c.mu
// held; unlocks it. ErrNotFound means the file vanished (the entry is
// dropped; the caller may retry as a miss).
func (c *Cache) openEntryLocked(ctx context.Context, e *entry) (*Reader, error) {
	e.refs++
	persist := c.touch(e)
	c.mu.Unlock()
	if persist != nil {
		persist()
	}
	f, err := os.Open(c.blobPath(e.d))
	if err != nil {
		c.mu.Lock()
		e.refs--
		if errors.Is(err, fs.ErrNotExist) && c.entries[e.d] == e {
			c.dropLocked(e)
		}
		c.mu.Unlock()
		if errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cache: content file missing, dropped from index", "digest", e.d)
			return nil, fmt.Errorf("%s: %w", e.d, ErrNotFound)
		}
		return nil, fmt.Errorf("cache: open %s: %w", e.d, err)
	}
	return &Reader{c: c, ctx: ctx, d: e.d, file: f, size: e.size, entry: e}, nil
}

// Blob returns a reader of blob d if it is cached for (host, repo), else
// ErrNotFound. It never goes upstream.
func (c *Cache) Blob(ctx context.Context, host, repo string, d digest.Digest) (*Reader, error) {
	s, err := newScope(host, repo)
	if err != nil {
		return nil, err
	}
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	e := c.entries[d]
	if e != nil {
		if _, ok := e.links[link{s, kindBlob}]; ok {
			r, err := c.openEntryLocked(ctx, e)
			if err == nil {
				c.stats.hits.Add(1)
			}
			return r, err
		}
	}
	c.mu.Unlock()
	return nil, fmt.Errorf("blob %s in %s: %w", d, s, ErrNotFound)
}

// Digest is the digest of the content being read.
func (r *Reader) Digest() digest.Digest { return r.d }

// Cached reports whether the reader serves a committed file (a cache hit)
// rather than following a fill.
func (r *Reader) Cached() bool { return r.fill == nil }

// Size is the content's size: known for committed content; for a fill, the
// size the upstream announced, or -1 until the fill completes.
func (r *Reader) Size() int64 {
	if r.fill == nil {
		return r.size
	}
	r.fill.mu.Lock()
	defer r.fill.mu.Unlock()
	if r.fill.done && r.fill.err == nil {
		return r.fill.written
	}
	return r.fill.size
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	n, err := r.readSome(p, r.off)
	r.off += int64(n)
	return n, err
}

// ReadAt implements io.ReaderAt; on a fill in progress it waits for the
// bytes to arrive.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("cache: negative offset %d", off)
	}
	total := 0
	for total < len(p) {
		n, err := r.readSome(p[total:], off+int64(total))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Seek implements io.Seeker. Seeking relative to the end of a fill whose
// size is unknown waits for the fill to complete.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		size := r.Size()
		if size < 0 {
			var err error
			if size, err = r.waitDone(); err != nil {
				return 0, err
			}
		}
		abs = size + offset
	default:
		return 0, fmt.Errorf("cache: seek: invalid whence %d", whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("cache: seek to negative offset %d", abs)
	}
	r.off = abs
	return abs, nil
}

// WriteTo implements io.WriterTo. For committed content it hands the file
// to w (sendfile to a socket); for a fill it copies as bytes arrive.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	if r.fill == nil {
		if r.off >= r.size {
			return 0, nil
		}
		if _, err := r.file.Seek(r.off, io.SeekStart); err != nil {
			return 0, err
		}
		n, err := io.Copy(w, &io.LimitedReader{R: r.file, N: r.size - r.off})
		r.off += n
		r.c.stats.bytesFromCache.Add(n)
		r.c.stats.bytesServed.Add(n)
		if err == nil && r.off < r.size {
			err = r.damaged(r.off)
		}
		return n, err
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// copyBufPool holds WriteTo's buffers for streaming readers: small, since
// there is one per client.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readSome reads what is available at off: at most one short read.
func (r *Reader) readSome(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.fill == nil {
		if off >= r.size {
			return 0, io.EOF
		}
		if rem := r.size - off; int64(len(p)) > rem {
			p = p[:rem]
		}
		n, err := r.file.ReadAt(p, off)
		if err == io.EOF {
			if n == len(p) {
				err = nil
			} else {
				err = r.damaged(off + int64(n))
			}
		}
		r.c.stats.bytesFromCache.Add(int64(n))
		r.c.stats.bytesServed.Add(int64(n))
		return n, err
	}
	f := r.fill
	for {
		f.mu.Lock()
		if f.done && f.err != nil {
			err := f.err
			f.mu.Unlock()
			return 0, fmt.Errorf("%w: %w", ErrFillFailed, err)
		}
		avail := f.written
		if !f.done && f.size >= 0 && avail >= f.size {
			avail = f.size - 1 // withhold the last byte until verified
		}
		if off < avail {
			f.mu.Unlock()
			if rem := avail - off; int64(len(p)) > rem {
				p = p[:rem]
			}
			n, err := r.file.ReadAt(p, off)
			if err == io.EOF && n == len(p) {
				err = nil
			}
			r.c.stats.bytesServed.Add(int64(n))
			return n, err
		}
		if f.done {
			f.mu.Unlock()
			return 0, io.EOF
		}
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// damaged reports a committed file that ends before its size (cut on disk
// after it was verified): never a clean EOF, and the entry is dropped so
// that the next fetch downloads it again.
func (r *Reader) damaged(end int64) error {
	r.c.dropDamaged(r.entry)
	return fmt.Errorf("%w: cached %s ends after %d of its %d bytes (damaged on disk; removed from the cache, the next pull downloads it again)",
		ErrSizeMismatch, r.d, end, r.size)
}

// waitDone waits for the fill to finish and returns the final size.
func (r *Reader) waitDone() (int64, error) {
	f := r.fill
	for {
		f.mu.Lock()
		if f.done {
			n, err := f.written, f.err
			f.mu.Unlock()
			if err != nil {
				return 0, fmt.Errorf("%w: %w", ErrFillFailed, err)
			}
			return n, nil
		}
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// Close releases the reader. It never affects a fill in progress.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.file.Close()
	c := r.c
	c.mu.Lock()
	if r.fill != nil {
		c.releaseFillReaderLocked(r.fill)
	} else {
		r.entry.refs--
	}
	over := c.opts.MaxSize > 0 && c.total+c.reserved > c.opts.MaxSize
	c.mu.Unlock()
	if over {
		c.evict()
	}
	return err
}
