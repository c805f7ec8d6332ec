package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/proxy/cache"
)

// Blobs is what the peer listener serves from: the local cache's committed
// blobs and fills in progress, by digest, never going upstream
// (*cache.Cache implements it).
type Blobs interface {
	Content(ctx context.Context, d digest.Digest) (*cache.Reader, error)
}

var _ Blobs = (*cache.Cache)(nil)

// peerHandler answers the peer protocol: the OCI blob API's GET and HEAD
// of /v2/<host>/<repository>/blobs/<digest> (Range optional) for signed
// requests of fleet members, plus a signed GET /v2/ that tells a member
// the listener is reachable and accepts its secret. Nothing else is served:
// no manifests, no tags, no upstream.
type peerHandler struct {
	blobs   Blobs
	sign    signer
	log     *slog.Logger
	metrics *Metrics
}

func (h *peerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		peerError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the peer listener serves GET and HEAD of blobs only")
		return
	}
	// Authenticate before looking at anything else: a non-member learns
	// nothing, not even whether a path would be served.
	if err := h.sign.verify(r); err != nil {
		h.refuse(w, r, err)
		return
	}
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
		return
	}
	d, ok := blobDigest(r.URL.Path)
	if !ok {
		peerError(w, http.StatusNotFound, "NOT_FOUND", "the peer listener serves /v2/<host>/<repository>/blobs/<digest> only")
		return
	}
	rd, err := h.blobs.Content(r.Context(), d)
	if err != nil {
		if errors.Is(err, cache.ErrNotFound) || errors.Is(err, cache.ErrInvalidName) {
			peerError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to this host")
			return
		}
		// The fill this host runs failed to start (its upstream refused,
		// the cache is closing): the peer goes upstream itself.
		h.log.Debug("fleet: peer asked for a blob this host cannot serve", "digest", d, "error", err)
		peerError(w, http.StatusBadGateway, "UNAVAILABLE", "this host's fill of the blob failed")
		return
	}
	defer rd.Close()
	hd := w.Header()
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Accept-Ranges", "bytes")
	size := rd.Size()
	cw := &countingWriter{ResponseWriter: w}
	defer func() { h.metrics.served.Add(float64(cw.n)) }()
	if size >= 0 && (r.Header.Get("Range") != "" || r.Method == http.MethodHead) {
		src := &readErrors{ReadSeeker: rd}
		http.ServeContent(cw, r, "", time.Time{}, src)
		if src.err != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	if size >= 0 {
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	var dst io.Writer = cw
	if !rd.Cached() {
		// A fill in progress: every chunk goes out as it arrives, not when
		// the response's buffer is full, so the peer's stream keeps pace.
		dst = &flushWriter{w: cw, rc: http.NewResponseController(w)}
	}
	if _, err := io.Copy(dst, rd); err != nil {
		// A fill that did not verify (or the peer left): the response must
		// not end cleanly, so the peer never takes it for the whole blob.
		h.log.Debug("fleet: peer stream cut", "digest", d, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// refuse answers a request that is not a fleet member's: 401 unsigned, 403
// signed wrongly or stale. Logged with the address, never the headers.
func (h *peerHandler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	reason, status, code := "bad_signature", http.StatusForbidden, "DENIED"
	switch {
	case errors.Is(err, ErrUnsigned):
		reason, status, code = "unsigned", http.StatusUnauthorized, "UNAUTHORIZED"
		w.Header().Set("WWW-Authenticate", authScheme)
	case errors.Is(err, ErrStale):
		reason = "stale"
	}
	h.metrics.refused.WithLabelValues(reason).Inc()
	h.log.Warn("fleet: refused a peer request", "remote", r.RemoteAddr, "reason", err.Error())
	peerError(w, status, code, "not a member of this fleet")
}

// blobDigest parses /v2/<name>/blobs/<digest>. The name is not used to
// look the blob up (a peer serves content by digest, for whatever
// repository it was fetched), but it must be there, as in the OCI API.
func blobDigest(p string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, "/blobs/")
	if i <= 0 {
		return "", false
	}
	d := digest.Digest(rest[i+len("/blobs/"):])
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// peerError writes an OCI error body.
func peerError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"errors":[{"code":"`+code+`","message":"`+msg+`"}]}`)
}

// readErrors remembers the first read error of a ReadSeeker, so that a
// handler can abort the response after http.ServeContent, which ends
// quietly when its reader fails.
type readErrors struct {
	io.ReadSeeker
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.ReadSeeker.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// countingWriter counts body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// flushWriter flushes after every write.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// newPeerServer is the peer listener's own http.Server (never the client
// listener's): bounded header reads, idle connections closed.
func newPeerServer(h http.Handler, log *slog.Logger, base context.Context) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}
