package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// source is one place a fill can read content from. A fill tries the
// sources in the order Cache.sources gives and reads from the first that
// opens; whatever it reads is verified the same way and committed in one
// place (Cache.commit), so a new source only has to say how it opens.
type source interface {
	// open returns the content of f.d and its size, -1 if unknown.
	// errNotHere (wrapped or not) sends the fill on to the next source;
	// any other error fails the fill and is what its callers get. acc is
	// the fill's owner (its repository and Upstream): a source that holds
	// content the upstream does not send itself calls acc.prove before
	// opening it.
	open(ctx context.Context, f *fill, acc *access) (body io.ReadCloser, size int64, err error)
	// String names the source in errors and logs.
	String() string
	// count adds n bytes read from the source to the cache's counters.
	count(n int64)
	// rejected is told that the content it gave for d failed verification
	// (ErrDigestMismatch or ErrSizeMismatch).
	rejected(d digest.Digest)
}

var (
	_ source = sharedSource{}
	_ source = upstreamSource{}
)

// errNotHere: a source does not have the content, or could not answer in
// time; the fill tries the next one.
var errNotHere = errors.New("not in this source")

// sources is the order a fill looks in after a local miss: the shared
// tier, the fleet (a peer filling it, see fleetSource; when this host takes
// the fill, the shared tier once more, see sharedAfterLease), then the
// upstream, which always answers.
func (c *Cache) sources() []source {
	srcs := make([]source, 0, 4)
	if c.opts.Shared != nil {
		srcs = append(srcs, sharedSource{c})
	}
	if c.opts.Fleet != nil {
		srcs = append(srcs, fleetSource{c})
		if c.opts.Shared != nil {
			srcs = append(srcs, sharedAfterLease{sharedSource{c}})
		}
	}
	return append(srcs, upstreamSource{c})
}

// openSource opens the first source that has f's content. A source that
// passes (a tier that failed or did not answer in time) restarts the fill's
// idle timer, which waiting for it must not use up.
func (c *Cache) openSource(ctx context.Context, f *fill, acc *access, resetIdle func()) (io.ReadCloser, int64, source, error) {
	srcs := c.sources()
	for i, src := range srcs {
		body, size, err := src.open(ctx, f, acc)
		if errors.Is(err, errNotHere) && i < len(srcs)-1 {
			resetIdle()
			continue
		}
		return body, size, src, err
	}
	panic("cache: no fill source") // sources always ends with the upstream
}

// upstreamSource is the repository's upstream (Upstream.Open): the source
// of last resort, and the only one that needs no proof of access, since its
// answer is the proof.
type upstreamSource struct{ c *Cache }

func (upstreamSource) open(ctx context.Context, _ *fill, acc *access) (io.ReadCloser, int64, error) {
	return acc.up.Open(ctx)
}

func (upstreamSource) String() string         { return "upstream" }
func (s upstreamSource) count(n int64)        { s.c.stats.bytesFromUpstream.Add(n) }
func (upstreamSource) rejected(digest.Digest) {}

// sharedSource is the shared tier. Each call to it is bounded by
// Options.SharedTimeout: a tier that fails or does not answer in time is
// passed by.
type sharedSource struct{ c *Cache }

func (sharedSource) String() string  { return "shared tier" }
func (s sharedSource) count(n int64) { s.c.stats.bytesFromShared.Add(n) }

// rejected deletes the corrupt copy before the fill's clients hear of the
// failure, so that their retry goes upstream.
func (s sharedSource) rejected(d digest.Digest) { s.c.deleteShared(s.c.ctx, d, "corrupt") }

func (s sharedSource) open(ctx context.Context, f *fill, acc *access) (io.ReadCloser, int64, error) {
	n, err := s.stat(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	// Repository scoping holds across hosts: each host asks the upstream
	// with its own credentials before it reads another host's copy.
	if err := acc.prove(ctx, f.d); err != nil {
		return nil, 0, err
	}
	c := s.c
	rc, cancel, err := sharedCall(ctx, c.opts.SharedTimeout, func(ctx context.Context) (io.ReadCloser, error) {
		return c.opts.Shared.Open(ctx, f.d)
	}, func(rc io.ReadCloser) { _ = rc.Close() })
	if err != nil {
		c.log.Warn("cache: shared tier read failed, going upstream", "digest", f.d, "error", err)
		return nil, 0, fmt.Errorf("%w: %w", errNotHere, err)
	}
	c.stats.sharedHits.Add(1)
	return &cancelOnClose{ReadCloser: rc, cancel: cancel}, n, nil
}

// stat returns the size of the tier's copy of f.d, or errNotHere: none,
// one of the wrong size (deleted, so that no host tries it again), or a
// tier that is down.
func (s sharedSource) stat(ctx context.Context, f *fill) (int64, error) {
	c := s.c
	n, err := c.statShared(ctx, f.d)
	switch {
	case err == nil && f.expected >= 0 && n != f.expected:
		c.log.Warn("cache: shared tier copy has the wrong size, deleting it and going upstream", "digest", f.d, "size", n, "expected", f.expected)
		c.deleteShared(ctx, f.d, "wrong-size")
		return 0, errNotHere
	case err == nil:
		return n, nil
	case !errors.Is(err, ErrNotFound):
		c.log.Warn("cache: shared tier unavailable, going upstream", "digest", f.d, "error", err)
	default:
		f.sharedMiss = true // the tier answered: no copy (yet)
	}
	return 0, fmt.Errorf("%w: %w", errNotHere, err)
}

// deleteShared removes the tier's copy of d (one that failed verification,
// or has the wrong size), bounded by SharedTimeout, so that a tier that
// hangs does not hold the fill's clients.
func (c *Cache) deleteShared(ctx context.Context, d digest.Digest, what string) {
	if what == "corrupt" {
		c.log.Warn("cache: shared tier copy is corrupt, deleting it", "digest", d)
	}
	_, cancel, err := sharedCall(ctx, c.opts.SharedTimeout, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, c.opts.Shared.Delete(ctx, d)
	}, nil)
	if err != nil {
		c.log.Warn("cache: delete "+what+" shared copy", "digest", d, "error", err)
		return
	}
	cancel()
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
