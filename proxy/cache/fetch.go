package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

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
	// OpenFrom, if set, starts the download at byte offset (a GET with
	// Range: bytes=offset-): the body's first byte is the blob's byte at
	// offset, and size is the whole blob's size, or -1 if unknown. A fill
	// whose fleet peer went away mid-stream uses it to go on from upstream
	// without downloading the bytes it already has; without it, Open is
	// used and those bytes are read again and skipped.
	OpenFrom func(ctx context.Context, offset int64) (body io.ReadCloser, size int64, err error)
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

// access is one repository's standing to read a digest, and the rule it
// keeps, in this one place: a repository reads content that is cached, or
// being filled, for another repository, or held in the shared tier, only
// after the upstream confirmed (check: Upstream.Check, a HEAD with this
// repository's credentials) that the repository has it. Knowing a digest
// is not enough. A link records a past proof. Every path to such content
// goes through prove: Fetch (blob GET, Range), Admit (blob HEAD),
// AdmitManifest (manifest by digest), and the shared tier's source.
type access struct {
	scope scope
	// up is the repository's upstream; its check (Upstream.Check) answers
	// nil when the repository has the content.
	up     Upstream
	proven bool
}

// prove asks the upstream once; later calls return at once.
func (a *access) prove(ctx context.Context, d digest.Digest) error {
	if a.proven {
		return nil
	}
	if err := a.up.check(ctx); err != nil {
		return fmt.Errorf("cache: %s has no access to %s: %w", a.scope, d, err)
	}
	a.proven = true
	return nil
}

// admit links committed content d to acc's repository once it proved
// access. ErrNotFound: d is no longer committed.
func (c *Cache) admit(ctx context.Context, acc *access, d digest.Digest, k kind, mediaType func() string) error {
	if err := acc.prove(ctx, d); err != nil {
		return err
	}
	mt := ""
	if mediaType != nil {
		mt = mediaType()
	}
	return c.addLink(acc.scope, d, k, mt)
}

// Admit returns the size of blob d for (host, repo): at once if it is
// linked to the repository, else, when it is committed for another
// repository, once check (the upstream's answer for this repository, with
// its credentials: a HEAD that answered 200) says the repository has it;
// the repository is then linked. An error from check is returned wrapped.
// ErrNotFound: d is not committed (check is not called; a fill in
// progress links the repositories that read it through Fetch).
func (c *Cache) Admit(ctx context.Context, host, repo string, d digest.Digest, check func(ctx context.Context) error) (int64, error) {
	s, err := newScope(host, repo)
	if err != nil {
		return 0, err
	}
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	size, linked, err := c.committed(s, d, kindBlob)
	if err != nil || linked {
		return size, err
	}
	if err := c.admit(ctx, &access{scope: s, up: Upstream{Check: check}}, d, kindBlob, nil); err != nil {
		return 0, err
	}
	return size, nil
}

// AdmitManifest is Admit for a manifest: check returns the media type the
// upstream gave it in this repository ("" keeps the type it was stored
// with). Any reason the cache cannot serve it to the repository after the
// proof (evicted, no usable media type) is ErrNotFound; read it with
// GetManifest.
func (c *Cache) AdmitManifest(ctx context.Context, host, repo string, d digest.Digest, check func(ctx context.Context) (mediaType string, err error)) error {
	s, err := newScope(host, repo)
	if err != nil {
		return err
	}
	if err := checkDigest(d); err != nil {
		return err
	}
	_, linked, err := c.committed(s, d, kindManifest)
	if err != nil || linked {
		return err
	}
	var mt string
	acc := &access{scope: s, up: Upstream{Check: func(ctx context.Context) (err error) {
		mt, err = check(ctx)
		return err
	}}}
	if err := acc.prove(ctx, d); err != nil {
		return err
	}
	if err := c.admit(ctx, acc, d, kindManifest, func() string { return mt }); err != nil {
		return fmt.Errorf("manifest %s in %s: %w (%w)", d, s, ErrNotFound, err)
	}
	return nil
}

// committed reports the size of committed content d and whether it is
// linked to s as k; ErrNotFound if it is not committed.
func (c *Cache) committed(s scope, d digest.Digest, k kind) (size int64, linked bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[d]
	if e == nil {
		return 0, false, fmt.Errorf("%s: %w", d, ErrNotFound)
	}
	_, linked = e.links[link{s, k}]
	return e.size, linked, nil
}

// errLookAgain: the state Fetch looked at changed under it (content
// evicted, a fill failed, access just proven); it looks again.
var errLookAgain = errors.New("look again")

// maxLooks bounds how often Fetch looks again before giving up.
const maxLooks = 10

// Fetch returns a reader of blob d for (host, repo).
//
//   - Cached and linked to the repository: a reader of the committed file.
//   - Cached, or being filled, for another repository: up.Check first, then
//     as above (the repository is linked).
//   - Not cached: the first caller starts one fill in its own goroutine
//     (see runFill for where it reads from); it and every concurrent caller
//     get readers that stream from the partial temp file as bytes arrive.
//     Fetch returns once the source answered, so an upstream error (404,
//     401, ...) is returned here.
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
	acc := &access{scope: s, up: up}
	for look := 0; look <= maxLooks; look++ {
		r, err := c.fetchOnce(ctx, d, size, acc)
		if !errors.Is(err, errLookAgain) {
			return r, err
		}
	}
	return nil, fmt.Errorf("cache: fetch %s: content keeps disappearing (evicted while fetching?)", d)
}

// fetchOnce reads d from the first of: the committed content, the fill in
// progress, a new fill.
func (c *Cache) fetchOnce(ctx context.Context, d digest.Digest, size int64, acc *access) (*Reader, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if e := c.entries[d]; e != nil {
		return c.readCommitted(ctx, e, acc)
	}
	if f := c.fills[d]; f != nil {
		return c.joinFill(ctx, f, acc)
	}
	return c.startFill(ctx, d, size, acc)
}

// readCommitted opens committed content for acc's repository, proving
// access and linking the repository first if it is not linked yet. Called
// with c.mu held; unlocks it.
func (c *Cache) readCommitted(ctx context.Context, e *entry, acc *access) (*Reader, error) {
	if _, ok := e.links[link{acc.scope, kindBlob}]; ok {
		r, err := c.openEntryLocked(ctx, e)
		if errors.Is(err, ErrNotFound) {
			return nil, errLookAgain
		}
		if err == nil {
			c.stats.hits.Add(1)
		}
		return r, err
	}
	c.mu.Unlock()
	if err := c.admit(ctx, acc, e.d, kindBlob, nil); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return nil, errLookAgain
}

// joinFill streams from a fill another caller started, proving access
// first if the fill is for another repository. Called with c.mu held;
// unlocks it.
func (c *Cache) joinFill(ctx context.Context, f *fill, acc *access) (*Reader, error) {
	if _, ok := f.scopes[acc.scope]; !ok {
		if !acc.proven {
			c.mu.Unlock()
			if err := acc.prove(ctx, f.d); err != nil {
				return nil, err
			}
			return nil, errLookAgain
		}
		f.scopes[acc.scope] = struct{}{}
	}
	f.readers++
	c.mu.Unlock()
	c.stats.joins.Add(1)
	r, err := c.streamReader(ctx, f)
	if err != nil && f.owner != acc.scope && f.openFailed() {
		// The upstream refused the repository that started the fill; this
		// one may still read the blob: try on its own.
		return nil, errLookAgain
	}
	return r, err
}

// startFill starts the one fill of d and streams from it. Called with c.mu
// held; unlocks it.
func (c *Cache) startFill(ctx context.Context, d digest.Digest, size int64, acc *access) (*Reader, error) {
	f := &fill{
		d:        d,
		owner:    acc.scope,
		expected: size,
		size:     size,
		started:  make(chan struct{}),
		scopes:   map[scope]struct{}{acc.scope: {}},
		readers:  1,
	}
	c.fills[d] = f
	c.fillWG.Add(1)
	c.mu.Unlock()
	c.stats.misses.Add(1)
	go c.runFill(f, *acc)
	return c.streamReader(ctx, f)
}

// Content returns a reader of d if it is committed or being filled, for
// whichever repository; ErrNotFound otherwise. It never goes upstream and
// never starts a fill. It does not check any repository's access: it is for
// a caller that has done so by other means (a fleet peer whose own
// repository proved access upstream), never for a client request.
func (c *Cache) Content(ctx context.Context, d digest.Digest) (*Reader, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	for look := 0; look <= maxLooks; look++ {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if e := c.entries[d]; e != nil {
			r, err := c.openEntryLocked(ctx, e)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err == nil {
				c.stats.hits.Add(1)
			}
			return r, err
		}
		f := c.fills[d]
		if f == nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("%s: %w", d, ErrNotFound)
		}
		f.readers++
		c.mu.Unlock()
		c.stats.joins.Add(1)
		return c.streamReader(ctx, f)
	}
	return nil, fmt.Errorf("cache: read %s: content keeps disappearing (evicted while reading?)", d)
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
