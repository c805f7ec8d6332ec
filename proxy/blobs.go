package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/oneline"
	"github.com/spacelift-io/tollgate/proxy/cache"
)

// blobService answers blob requests. It looks in one order: the cache
// (which itself looks in the shared tier, and fills from the upstream once
// for every client that asks meanwhile: cache.Fetch), else the upstream.
// The cache is written in one place, the cache's fill; a blob too large for
// the cache, or without room on its disk, is streamed past it, verified.
type blobService struct {
	upstreams *upstreams
	cache     *cache.Cache // nil: nothing is cached
	metrics   *metrics
	// background runs work that outlives the request (Server.background).
	background func(func(ctx context.Context))
	// bodyIdleTimeout cuts a blob streamed straight from upstream (not
	// through the cache, which has its own) when the upstream sends nothing
	// for this long.
	bodyIdleTimeout time.Duration
}

// serve answers GET and HEAD of a blob.
func (bs *blobService) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	if r.Method == http.MethodHead {
		bs.head(w, r, rt)
		return
	}
	r = usableRange(r, rt.digest)
	switch {
	case bs.cache == nil:
		bs.passThrough(w, r, rt, "bypass")
	case r.Header.Get("Range") != "" && !bs.cache.Exists(rt.digest):
		bs.coldRange(w, r, rt)
	default:
		bs.fromCache(w, r, rt)
	}
}

// coldRange forwards a range of a blob the cache does not hold, keeps
// nothing partial, and fills the whole blob in the background for the next
// client.
func (bs *blobService) coldRange(w http.ResponseWriter, r *http.Request, rt *route) {
	if !bs.passThrough(w, r, rt, "range") {
		return // the upstream does not have it for us: nothing to warm
	}
	bs.background(func(ctx context.Context) {
		rd, err := bs.cache.Fetch(ctx, rt.name.Host, rt.name.Path, rt.digest, -1, bs.upstream(rt))
		if err == nil {
			_ = rd.Close()
		}
	})
}

// fromCache serves the blob through the cache: a committed file, or a fill
// the cache streams as it arrives (from the shared tier or the upstream).
// A blob the cache cannot hold is streamed past it.
func (bs *blobService) fromCache(w http.ResponseWriter, r *http.Request, rt *route) {
	ri := infoFrom(r.Context())
	rd, err := bs.cache.Fetch(r.Context(), rt.name.Host, rt.name.Path, rt.digest, -1, bs.upstream(rt))
	if errors.Is(err, cache.ErrTooLarge) || errors.Is(err, cache.ErrNoSpace) {
		// Larger than the whole cache, or no room on its disk: streamed
		// past it, still verified.
		bs.passThrough(w, r, rt, "bypass")
		return
	}
	if err != nil {
		if errors.Is(err, cache.ErrInvalidName) {
			err = errcode.ErrorCodeNameInvalid.WithMessage(err.Error())
		}
		failUpstream(w, r, err, errcode.ErrorCodeBlobUnknown)
		return
	}
	defer rd.Close()
	source := "upstream"
	if rd.Cached() {
		source = "cache"
		bs.metrics.cacheResult(ri, "blob", "hit")
	} else {
		bs.metrics.cacheResult(ri, "blob", "miss")
	}
	setBlobHeaders(w.Header(), rt.digest)
	before := bytesWritten(w)
	defer func() { bs.metrics.bytesServed.WithLabelValues(source).Add(float64(bytesWritten(w) - before)) }()
	if r.Header.Get("Range") != "" && rd.Size() >= 0 {
		serveRanges(w, r, rd)
		return
	}
	var first []byte
	if !rd.Cached() {
		if first, err = firstBytes(rd); err != nil {
			rd.Close()
			bs.fillFailedEarly(w, r, rt, err)
			return
		}
	}
	sendWhole(w, r, rd, first)
}

// setBlobHeaders sets what every blob answer carries: its digest (also its
// strong ETag), a neutral type, and range support.
func setBlobHeaders(h http.Header, d digest.Digest) {
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
}

// serveRanges answers a Range request from content of known size
// (http.ServeContent: 206, multipart for several ranges, 416).
func serveRanges(w http.ResponseWriter, r *http.Request, rd *cache.Reader) {
	src := &readErrors{ReadSeeker: rd}
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w}, r, "", time.Time{}, src)
	if err := src.failed(); err != nil {
		// ServeContent ends quietly when its reader fails (a fill that did
		// not verify, a client gone): the response must not.
		infoFrom(r.Context()).err = err
		panic(http.ErrAbortHandler)
	}
}

// firstBytes waits for the first bytes of a fill before the answer commits
// to 200, so that an upstream failing early still gets the client a proper
// error instead of a cut connection.
func firstBytes(rd io.Reader) ([]byte, error) {
	buf := make([]byte, 32<<10)
	n, err := readSome(rd, buf)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:n], nil
}

// fillFailedEarly answers a fill that failed before any byte went out: past
// the cache if its disk filled up, else with the upstream's error.
func (bs *blobService) fillFailedEarly(w http.ResponseWriter, r *http.Request, rt *route, err error) {
	h := w.Header()
	h.Del("Docker-Content-Digest")
	h.Del("Etag")
	h.Del("Accept-Ranges")
	if errors.Is(err, cache.ErrNoSpace) {
		bs.passThrough(w, r, rt, "bypass")
		return
	}
	failUpstream(w, r, fillError(rt.name.Host, err), errcode.ErrorCodeBlobUnknown)
}

// sendWhole sends the whole blob: the bytes already read, then the rest.
// w passes io.ReaderFrom through, so a committed blob goes out with
// sendfile. A reader that fails (truncated or corrupt upstream content, the
// last byte withheld; or the client left) must not end the response
// cleanly: the handler aborts it.
func sendWhole(w http.ResponseWriter, r *http.Request, rd *cache.Reader, first []byte) {
	if size := rd.Size(); size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if len(first) > 0 {
		if _, err := w.Write(first); err != nil {
			infoFrom(r.Context()).err = err
			panic(http.ErrAbortHandler)
		}
	}
	if _, err := io.Copy(w, rd); err != nil {
		infoFrom(r.Context()).err = err
		panic(http.ErrAbortHandler)
	}
}

// readSome reads until it has some bytes or an error.
func readSome(r io.Reader, buf []byte) (int, error) {
	for {
		n, err := r.Read(buf)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// fillError is what the client is told when a fill failed before any byte
// of it was sent: the upstream's own error if it answered one, else a 502.
func fillError(host string, err error) error {
	var ue *upstreamError
	var un *unreachableError
	if errors.As(err, &ue) || errors.As(err, &un) {
		return err
	}
	return badUpstream(host, errcode.ErrorCodeBlobUnknown, err.Error())
}

// upstream is how the cache reaches this blob in this repository.
func (bs *blobService) upstream(rt *route) cache.Upstream {
	return cache.Upstream{
		Open: func(ctx context.Context) (io.ReadCloser, int64, error) {
			resp, err := bs.upstreams.request(ctx, http.MethodGet, rt, nil, nil)
			if err != nil {
				return nil, 0, err
			}
			if resp.StatusCode != http.StatusOK {
				defer resp.Body.Close()
				return nil, 0, readUpstreamError(rt.name.Host, resp)
			}
			return &countingBody{ReadCloser: resp.Body, add: bs.metrics.upstreamBytes.WithLabelValues(bs.metrics.host(rt.name.Host)).Add}, resp.ContentLength, nil
		},
		Check: func(ctx context.Context) error {
			_, err := bs.headUpstream(ctx, rt)
			return err
		},
		OpenFrom: func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
			return bs.openUpstreamFrom(ctx, rt, offset)
		},
	}
}

// openUpstreamFrom GETs the blob upstream from byte offset on (Range:
// bytes=offset-). A 206 must start at offset; its Content-Range gives the
// whole size. An upstream that ignores the range answers 200 with the
// whole blob, whose first offset bytes are read and dropped here. A 416
// saying the blob is offset bytes long means nothing is left: an empty
// body.
func (bs *blobService) openUpstreamFrom(ctx context.Context, rt *route, offset int64) (io.ReadCloser, int64, error) {
	resp, err := bs.upstreams.request(ctx, http.MethodGet, rt, nil, http.Header{"Range": {"bytes=" + strconv.FormatInt(offset, 10) + "-"}})
	if err != nil {
		return nil, 0, err
	}
	body := &countingBody{ReadCloser: resp.Body, add: bs.metrics.upstreamBytes.WithLabelValues(bs.metrics.host(rt.name.Host)).Add}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			_ = body.Close()
			return nil, 0, fmt.Errorf("upstream %s answered a download from byte %d with Content-Range %s", rt.name.Host, offset, oneline.Quote(resp.Header.Get("Content-Range")))
		}
		return body, size, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// "bytes */SIZE" with SIZE == offset: the bytes before offset
		// are the whole blob (a peer stream of unknown length that broke
		// off just after its last byte); nothing is left to download.
		_ = body.Close()
		cr := resp.Header.Get("Content-Range")
		if size, err := strconv.ParseInt(strings.TrimPrefix(cr, "bytes */"), 10, 64); err == nil && strings.HasPrefix(cr, "bytes */") && size == offset {
			return io.NopCloser(strings.NewReader("")), size, nil
		}
		return nil, 0, fmt.Errorf("upstream %s refused a download from byte %d (416, Content-Range %s)", rt.name.Host, offset, oneline.Quote(cr))
	case http.StatusOK:
		if _, err := io.CopyN(io.Discard, body, offset); err != nil {
			_ = body.Close()
			return nil, 0, fmt.Errorf("upstream %s ignored the range: skipping its first %d bytes: %w", rt.name.Host, offset, err)
		}
		return body, resp.ContentLength, nil
	default:
		defer resp.Body.Close()
		return nil, 0, readUpstreamError(rt.name.Host, resp)
	}
}

// parseContentRange reads "bytes FIRST-LAST/SIZE" (SIZE may be "*", then
// -1).
func parseContentRange(v string) (first, size int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	span, total, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, false
	}
	if total == "*" {
		return first, -1, true
	}
	size, err := strconv.ParseInt(total, 10, 64)
	if err != nil || size <= last {
		return 0, 0, false
	}
	return first, size, true
}

// headUpstream HEADs the blob upstream with this repository's
// credentials and returns its size.
func (bs *blobService) headUpstream(ctx context.Context, rt *route) (int64, error) {
	resp, err := bs.upstreams.request(ctx, http.MethodHead, rt, nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, readUpstreamError(rt.name.Host, resp)
	}
	return resp.ContentLength, nil
}

// head answers HEAD from the cache, or from an upstream HEAD (never a
// download).
func (bs *blobService) head(w http.ResponseWriter, r *http.Request, rt *route) {
	size, result, err := bs.headSize(r.Context(), rt)
	if err != nil {
		failUpstream(w, r, err, errcode.ErrorCodeBlobUnknown)
		return
	}
	if result != "" {
		bs.metrics.cacheResult(infoFrom(r.Context()), "blob", result)
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", rt.digest.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Etag", `"`+rt.digest.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
}

// headSize is the blob's size: from the cache when it holds the blob for
// this repository; else from the upstream's HEAD, which also admits the
// repository to a copy the cache holds for another (cache.Admit). result
// is how the cache answered ("" without a cache).
func (bs *blobService) headSize(ctx context.Context, rt *route) (size int64, result string, err error) {
	if bs.cache == nil {
		size, err = bs.headUpstream(ctx, rt)
		return size, "", err
	}
	if n, ok := bs.cache.Stat(rt.name.Host, rt.name.Path, rt.digest); ok {
		return n, "hit", nil
	}
	asked := false
	size = -1
	n, err := bs.cache.Admit(ctx, rt.name.Host, rt.name.Path, rt.digest, func(ctx context.Context) (err error) {
		asked = true
		size, err = bs.headUpstream(ctx, rt)
		return err
	})
	switch {
	case err == nil && asked:
		return size, "link", nil
	case err == nil:
		return n, "hit", nil // linked meanwhile
	case !errors.Is(err, cache.ErrNotFound):
		return 0, "", err // the upstream refused this repository
	case asked:
		return size, "miss", nil // proven, but evicted meanwhile
	}
	size, err = bs.headUpstream(ctx, rt)
	return size, "miss", err
}

// passThrough streams a blob (or the requested range of it) from
// upstream without caching it. A whole blob is verified as it streams and its
// last chunk is held back until the digest matched, so a truncated or corrupt
// upstream body never reaches the client complete. It reports whether the
// upstream has the blob (it answered 200, 206, or 416 for a bad range).
func (bs *blobService) passThrough(w http.ResponseWriter, r *http.Request, rt *route, result string) bool {
	ri := infoFrom(r.Context())
	bs.metrics.cacheResult(ri, "blob", result)
	var hdr http.Header
	if rg := r.Header.Get("Range"); rg != "" {
		hdr = http.Header{"Range": {rg}}
	}
	resp, err := bs.upstreams.request(r.Context(), http.MethodGet, rt, nil, hdr)
	if err != nil {
		failUpstream(w, r, err, errcode.ErrorCodeBlobUnknown)
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			w.Header().Set("Content-Range", resp.Header.Get("Content-Range"))
			writeError(w, errcode.ErrorCodeRangeInvalid.WithMessage("requested range not satisfiable"))
			return true // the blob is there; only the range is wrong
		}
		failUpstream(w, r, readUpstreamError(rt.name.Host, resp), errcode.ErrorCodeBlobUnknown)
		return false
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", rt.digest.String())
	h.Set("Content-Type", "application/octet-stream")
	if resp.StatusCode == http.StatusPartialContent {
		// Several ranges come as one multipart/byteranges body whose
		// boundary only the upstream's Content-Type names.
		ct := resp.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "multipart/byteranges" {
			h.Set("Content-Type", ct)
		}
	}
	h.Set("Etag", `"`+rt.digest.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	if cr := resp.Header.Get("Content-Range"); cr != "" {
		h.Set("Content-Range", cr)
	}
	w.WriteHeader(resp.StatusCode)
	idle := newIdleBody(resp.Body, bs.bodyIdleTimeout)
	defer idle.stop()
	body := &countingBody{ReadCloser: idle, add: bs.metrics.upstreamBytes.WithLabelValues(bs.metrics.host(rt.name.Host)).Add}
	before := bytesWritten(w)
	defer func() { bs.metrics.bytesServed.WithLabelValues("upstream").Add(float64(bytesWritten(w) - before)) }()
	if resp.StatusCode == http.StatusPartialContent {
		if _, err := io.Copy(w, body); err != nil {
			ri.err = err
			panic(http.ErrAbortHandler)
		}
		return true
	}
	if err := copyVerified(w, body, rt.digest, resp.ContentLength); err != nil {
		ri.err = err
		panic(http.ErrAbortHandler)
	}
	return true
}

// maxRanges is how many ranges one request may ask for (nginx's
// max_ranges): past it the Range header is ignored and the whole blob is
// the answer (200), so that a request of many tiny ranges (4,000 one-byte
// ranges in a 16 KB header) cannot multiply a response into a multipart
// body many times the blob's size. Registry clients ask for one range (to
// resume a download).
const maxRanges = 16

// usableRange decides, before anything else looks at Range, whether the
// request's Range applies:
//
//   - If-Range (RFC 9110, 13.1.5): a blob's only validator is its strong
//     ETag, the quoted digest, so an If-Range naming anything else (another
//     ETag, a weak one, a date) asks for the whole blob. Without this, a
//     cold range forwarded upstream would answer 206 where a cached blob
//     (http.ServeContent) answers 200.
//   - more than maxRanges ranges: the whole blob.
func usableRange(r *http.Request, d digest.Digest) *http.Request {
	rg := r.Header.Get("Range")
	if rg == "" {
		return r
	}
	ir := r.Header.Get("If-Range")
	tooMany := strings.Count(rg, ",") >= maxRanges
	if ir == "" && !tooMany {
		return r
	}
	r2 := r.Clone(r.Context())
	if (ir != "" && ir != `"`+d.String()+`"`) || tooMany {
		r2.Header.Del("Range")
	}
	r2.Header.Del("If-Range")
	return r2
}

// readErrors remembers the first error other than io.EOF that a Read
// returned, for callers (http.ServeContent) that drop it.
type readErrors struct {
	io.ReadSeeker
	mu  sync.Mutex
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.ReadSeeker.Read(p)
	if err != nil && err != io.EOF {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *readErrors) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

var (
	_ http.ResponseWriter = (*rangeErrorWriter)(nil)
	_ io.ReaderFrom       = (*rangeErrorWriter)(nil) // sendfile passes through
	_ io.ReadCloser       = (*countingBody)(nil)
	_ io.ReadCloser       = (*idleBody)(nil)
)

// rangeErrorWriter turns http.ServeContent's plain-text 416 into an OCI
// error body (RANGE_INVALID), as the cold path answers it. ServeContent sets
// Content-Range (bytes */size) before it fails; that header stays.
type rangeErrorWriter struct {
	http.ResponseWriter
	failed bool
}

func (w *rangeErrorWriter) WriteHeader(code int) {
	if code != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.failed = true
	w.Header().Del("X-Content-Type-Options")
	w.Header().Del("Content-Length")
	writeError(w.ResponseWriter, errcode.ErrorCodeRangeInvalid.WithMessage("requested range not satisfiable"))
}

func (w *rangeErrorWriter) Write(p []byte) (int, error) {
	if w.failed {
		return len(p), nil // ServeContent's own text body
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile for the ranges ServeContent copies.
func (w *rangeErrorWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.failed {
		return io.Copy(io.Discard, src)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *rangeErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errBlobMismatch: the upstream's bytes do not hash to the blob's digest.
var errBlobMismatch = errors.New("upstream blob does not match its digest")

// copyVerified copies src to dst, hashing as it goes, and writes the final
// chunk only once the digest (and the size, when known) matched.
func copyVerified(dst io.Writer, src io.Reader, d digest.Digest, size int64) error {
	if !d.Algorithm().Available() {
		return errors.New("unsupported digest algorithm " + string(d.Algorithm()))
	}
	v := d.Verifier()
	cur := make([]byte, 64<<10)
	next := make([]byte, 64<<10)
	var held []byte
	var total int64
	for {
		n, err := io.ReadFull(src, next)
		if n > 0 {
			if held != nil {
				if _, werr := dst.Write(held); werr != nil {
					return werr
				}
			}
			_, _ = v.Write(next[:n])
			total += int64(n)
			cur, next = next, cur
			held = cur[:n]
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if size >= 0 && total != size {
		return io.ErrUnexpectedEOF
	}
	if !v.Verified() {
		return errBlobMismatch
	}
	if held != nil {
		_, err := dst.Write(held)
		return err
	}
	return nil
}

// countingBody counts bytes read from an upstream body into a metric.
type countingBody struct {
	io.ReadCloser
	add func(float64)
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		c.add(float64(n))
	}
	return n, err
}

// errBodyIdle: the upstream stopped sending a body.
var errBodyIdle = errors.New("upstream sent no data for too long")

// idleBody closes an upstream body that sends nothing for a while, so that
// a stalled upstream cannot hold a client's request (and its connection)
// for as long as the client waits. http response bodies may be closed
// while a Read blocks; the Read then fails.
type idleBody struct {
	io.ReadCloser
	timeout time.Duration
	timer   *time.Timer
	expired atomic.Bool
}

func newIdleBody(rc io.ReadCloser, timeout time.Duration) *idleBody {
	b := &idleBody{ReadCloser: rc, timeout: timeout}
	b.timer = time.AfterFunc(timeout, func() {
		b.expired.Store(true)
		_ = rc.Close()
	})
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	if err != nil && err != io.EOF && b.expired.Load() {
		err = fmt.Errorf("%w (%s): %w", errBodyIdle, b.timeout, err)
	}
	return n, err
}

// stop releases the timer.
func (b *idleBody) stop() { b.timer.Stop() }
