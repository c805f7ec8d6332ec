package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/securefile"
)

// Errors returned by the cache. Match them with errors.Is.
var (
	// ErrNotFound: the content is not cached for this repository.
	ErrNotFound = errors.New("not in cache")
	// ErrInvalidName: a host, repository, tag or digest that cannot be used.
	ErrInvalidName = errors.New("invalid name")
	// ErrDigestMismatch: the upstream sent content that does not hash to
	// the requested digest. Nothing was cached.
	ErrDigestMismatch = errors.New("content does not match its digest")
	// ErrSizeMismatch: the upstream sent more or fewer bytes than announced.
	// Nothing was cached.
	ErrSizeMismatch = errors.New("content size does not match")
	// ErrFillFailed wraps the cause on every reader of a fill that did not
	// commit (truncated, corrupt, timed out, upstream error mid-body).
	ErrFillFailed = errors.New("cache fill failed")
	// ErrIdleTimeout: the upstream sent nothing for Options.FillIdleTimeout.
	ErrIdleTimeout = errors.New("upstream idle timeout")
	// ErrTooLarge: a manifest above MaxManifestSize, or a blob larger than
	// Options.MaxSize: Fetch fails with it before any eviction when the size
	// is announced (serve such a blob past the cache); a fill of unannounced
	// size fails with it once it outgrows MaxSize.
	ErrTooLarge = errors.New("content too large")
	// ErrNoSpace: the cache's filesystem has no room for the content (the
	// disk is full of other things; eviction within MaxSize cannot help).
	// Nothing was cached: serve such a blob past the cache.
	ErrNoSpace = errors.New("no room on the cache's disk")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("cache closed")
)

// MaxManifestSize bounds manifests (and the tag records' manifests): the
// same 4 MiB limit distribution and containerd apply.
const MaxManifestSize = 4 << 20

// Options configure a Cache. Only Dir is required.
type Options struct {
	// Dir is the cache directory, created 0700 if missing. One process at a
	// time may use it (a lock file inside enforces this).
	Dir string
	// MaxSize is the disk budget in bytes: committed content plus the
	// announced size of fills in progress. Past it the least-recently-used
	// content that no reader holds open is evicted. 0 means no limit.
	MaxSize int64
	// FillIdleTimeout aborts a fill when the upstream sends no data for this
	// long (including waiting for the response). Default 1 minute.
	FillIdleTimeout time.Duration
	// FillTimeout bounds a whole fill. Default 0: no limit beyond the idle one.
	FillTimeout time.Duration
	// Shared is an optional second tier consulted on a local miss and
	// filled in the background after a verified local fill. See SharedTier.
	Shared SharedTier
	// SharedTimeout bounds each look-up in the shared tier (Stat, Open);
	// past it the fill goes to the upstream instead, so a tier that is down
	// or hangs (an NFS server gone away) never holds a pull. Default 5
	// seconds.
	SharedTimeout time.Duration
	// Fleet, when set, is asked on a miss in the local cache and the
	// shared tier, before the upstream: it picks one filler per blob across
	// the hosts of a fleet, and the others stream from it (see Fleet).
	Fleet Fleet
	// Mode, when set, is checked against (and recorded in) the directory
	// before anything in it is used: a public cache refuses a directory
	// that holds private content (ErrPrivateContent). "" leaves the
	// directory's record alone.
	Mode Mode
	// Logger receives operational messages (evictions, cleanup, failures).
	// Default: slog.Default().
	Logger *slog.Logger
}

// Cache is a content-addressed, repository-scoped store of verified blobs
// and manifests on local disk. All methods are safe for concurrent use.
type Cache struct {
	opts Options
	dir  string
	log  *slog.Logger
	lock *securefile.Lock

	ctx    context.Context // parent of every fill; cancelled by Close
	cancel context.CancelFunc
	fillWG sync.WaitGroup // fills and background uploads

	mu      sync.Mutex
	closed  bool
	entries map[digest.Digest]*entry
	lru     *list.List // of *entry, most recently used at the front
	total   int64      // bytes of committed content
	// reserved is the announced size of fills in progress: eviction makes
	// room for them before they are written, so MaxSize bounds the disk.
	reserved int64
	fills    map[digest.Digest]*fill

	stats counters
}

// entry is one committed, verified piece of content. Guarded by Cache.mu.
type entry struct {
	d       digest.Digest
	size    int64
	elem    *list.Element
	refs    int       // open readers; an entry with readers is never evicted
	touched time.Time // last time the file's mtime was set (persisted access time)
	links   map[link]string
}

// link is a (repository, kind) that an entry is served for; the map value
// is the media type for manifests.
type link struct {
	scope
	kind kind
}

// touchInterval is how stale a file's persisted access time (mtime) may
// get; it only matters for LRU order after a restart.
const touchInterval = 10 * time.Minute

// Open opens (creating if needed) the cache in opts.Dir, removes leftover
// partial downloads and loads the index from disk. Content whose file is
// missing or empty is dropped; only fully verified files are ever in blobs/.
func Open(ctx context.Context, opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: no directory configured (proxy.cache.dir)")
	}
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("cache: negative max size %d", opts.MaxSize)
	}
	if opts.FillIdleTimeout <= 0 {
		opts.FillIdleTimeout = time.Minute
	}
	if opts.SharedTimeout <= 0 {
		opts.SharedTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache: directory %s: %w", opts.Dir, err)
	}
	if err := securefile.MkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if exposed, mode, err := securefile.CheckPrivate(dir); err == nil && exposed {
		opts.Logger.Warn("cache: directory is readable by other users; it can hold private images (chmod 700 it)",
			"dir", dir, "mode", mode.String())
	}
	lctx, lcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	lock, err := securefile.LockFile(lctx, filepath.Join(dir, "lock"))
	lcancel()
	switch {
	case errors.Is(err, securefile.ErrLockTimeout):
		return nil, fmt.Errorf("cache: directory %s is in use by another process (one tollgate proxy per cache directory): %w", dir, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("cache: directory %s: %w (it belongs to another user: run the proxy as that user, or chown -R the directory to the user the proxy runs as)", dir, err)
	case err != nil:
		return nil, fmt.Errorf("cache: directory %s: %w", dir, err)
	}
	if opts.Mode != "" {
		if err := claimMode(dir, opts.Mode); err != nil {
			_ = lock.Unlock()
			return nil, err
		}
	}
	c := &Cache{
		opts:    opts,
		dir:     dir,
		log:     opts.Logger.With("component", "cache"),
		lock:    lock,
		entries: make(map[digest.Digest]*entry),
		lru:     list.New(),
		fills:   make(map[digest.Digest]*fill),
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := c.load(); err != nil {
		c.cancel()
		_ = lock.Unlock()
		return nil, err
	}
	c.evict()
	if opts.Shared != nil {
		c.sweepShared()
	}
	return c, nil
}

// Close stops the cache. It waits for fills in progress (and background
// uploads to the shared tier) until ctx is done, then cancels them. Readers
// already open keep working; new calls fail with ErrClosed.
func (c *Cache) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	done := make(chan struct{})
	go func() { c.fillWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.cancel()
		<-done
	}
	c.cancel()
	return c.lock.Unlock()
}

// Has reports whether d is cached and linked as a blob to (host, repo).
func (c *Cache) Has(host, repo string, d digest.Digest) bool {
	_, ok := c.Stat(host, repo, d)
	return ok
}

// Stat returns the size of blob d if it is cached for (host, repo).
func (c *Cache) Stat(host, repo string, d digest.Digest) (size int64, ok bool) {
	s, err := newScope(host, repo)
	if err != nil || checkDigest(d) != nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[d]
	if e == nil {
		return 0, false
	}
	if _, ok := e.links[link{s, kindBlob}]; !ok {
		return 0, false
	}
	return e.size, true
}

// Exists reports whether d is cached for any repository, or is being
// filled. The proxy uses it to decide whether asking the upstream (HEAD,
// with the repository's credentials) and then Link is worth it.
func (c *Cache) Exists(d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[d] != nil || c.fills[d] != nil
}

// Link records that (host, repo) may read blob d. Call it only after the
// upstream confirmed, with that repository's credentials, that the
// repository has the blob (a HEAD answered 200); Admit does both. It fails
// with ErrNotFound when d is not committed (it may be being filled: use
// Fetch with a Check).
func (c *Cache) Link(host, repo string, d digest.Digest) error {
	s, err := newScope(host, repo)
	if err != nil {
		return err
	}
	return c.addLink(s, d, kindBlob, "")
}

// LinkManifest is Link for a manifest, with the media type the upstream
// gave for it in this repository; "" keeps the type it was stored with.
func (c *Cache) LinkManifest(host, repo string, d digest.Digest, mediaType string) error {
	s, err := newScope(host, repo)
	if err != nil {
		return err
	}
	return c.addLink(s, d, kindManifest, mediaType)
}

// addLink links d to repository s as kind k (for a manifest, with its
// media type) in the index and on disk.
func (c *Cache) addLink(s scope, d digest.Digest, k kind, mediaType string) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	c.mu.Lock()
	e := c.entries[d]
	if e == nil {
		c.mu.Unlock()
		return fmt.Errorf("link %s to %s: %w", d, s, ErrNotFound)
	}
	l := link{s, k}
	if k == kindManifest && mediaType == "" {
		// No type named: the content's type is the one it was stored with
		// for another repository.
		for ol, mt := range e.links {
			if ol.kind == kindManifest && mt != "" {
				mediaType = mt
				break
			}
		}
	}
	if k == kindManifest {
		if err := checkMediaType(mediaType); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("link manifest %s to %s: %w", d, s, err)
		}
	}
	old, had := e.links[l]
	e.links[l] = mediaType
	c.mu.Unlock()
	if had && old == mediaType {
		return nil
	}
	return c.writeLink(l, d, mediaType)
}

// maxMediaTypeLen bounds a stored media type (RFC 6838 allows 127+1+127).
const maxMediaTypeLen = 255

// checkMediaType accepts the media types a manifest link may hold: non-empty
// printable ASCII (they become a Content-Type header).
func checkMediaType(mt string) error {
	if mt == "" {
		return fmt.Errorf("%w: no media type for the manifest", ErrInvalidName)
	}
	if len(mt) > maxMediaTypeLen {
		return fmt.Errorf("%w: media type of %d bytes", ErrInvalidName, len(mt))
	}
	for i := 0; i < len(mt); i++ {
		if mt[i] < 0x20 || mt[i] > 0x7e {
			return fmt.Errorf("%w: media type %q", ErrInvalidName, mt)
		}
	}
	return nil
}

// readMediaType reads a manifest link file and checks what it holds.
func readMediaType(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMediaTypeLen+1))
	if err != nil {
		return "", err
	}
	if err := checkMediaType(string(b)); err != nil {
		return "", err
	}
	return string(b), nil
}

// writeLink persists a link so it survives a restart. Blob links are empty
// files (creation is atomic; one lost in a crash only costs an upstream
// check); manifest links hold the media type and are written with fsync and
// rename.
func (c *Cache) writeLink(l link, d digest.Digest, mediaType string) error {
	p := c.linkPath(l.scope, l.kind, d)
	if l.kind == kindManifest {
		// Synced: a link whose rename outlived its data after a crash would
		// hold no media type.
		if err := securefile.WriteFile(p, []byte(mediaType)); err != nil {
			return fmt.Errorf("cache: record manifest link: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("cache: record blob link: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cache: record blob link: %w", err)
	}
	return f.Close()
}

// touch marks e used now: front of the LRU list, and (rarely) the file's
// mtime so the order survives a restart. Called with c.mu held; returns a
// function to run after unlocking (nil if nothing to persist).
func (c *Cache) touch(e *entry) func() {
	c.lru.MoveToFront(e.elem)
	now := time.Now()
	if now.Sub(e.touched) < touchInterval {
		return nil
	}
	e.touched = now
	p := c.blobPath(e.d)
	return func() { _ = os.Chtimes(p, now, now) }
}
