package harness

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// RecorderOptions configures a Recorder.
type RecorderOptions struct {
	// Authorize, when set, makes the recorder demand HTTP Basic credentials
	// on every request, as Amazon ECR does: no or bad credentials get 401
	// with `WWW-Authenticate: Basic realm=...`, good ones are forwarded
	// (without the Authorization header) to the backend.
	Authorize func(username, password string) bool
	// Truncate, when it returns true for a request, cuts the backend's
	// response body in half and closes the connection (a broken upstream).
	Truncate func(r *http.Request) bool
}

// RecordedRequest is one request a Recorder saw.
type RecordedRequest struct {
	Method, Path, RawQuery string
	// Authorization is the scheme of the Authorization header ("Basic",
	// "Bearer"), or "" when the client sent none.
	Authorization string
	Status        int
}

// Recorder is a reverse proxy on 127.0.0.1 that records every request
// before passing it to a backend: to see what a client sent upstream.
type Recorder struct {
	// URL is http://127.0.0.1:PORT; Host is 127.0.0.1:PORT.
	URL, Host string

	mu   sync.Mutex
	reqs []RecordedRequest
}

// StartRecorder starts a recording reverse proxy in front of backendURL.
func StartRecorder(t testing.TB, backendURL string, opts RecorderOptions) *Recorder {
	t.Helper()
	target, err := url.Parse(backendURL)
	if err != nil {
		t.Fatalf("harness: recorder backend: %v", err)
	}
	rec := &Recorder{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = nil
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry := RecordedRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
		if a := r.Header.Get("Authorization"); a != "" {
			entry.Authorization, _, _ = strings.Cut(a, " ")
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			entry.Status = sw.status
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, entry)
			rec.mu.Unlock()
		}()
		if opts.Authorize != nil {
			u, p, ok := r.BasicAuth()
			if !ok || !opts.Authorize(u, p) {
				sw.Header().Set("WWW-Authenticate", `Basic realm="`+"http://"+r.Host+`/",service="ecr.amazonaws.com"`)
				sw.Header().Set("Content-Type", "application/json")
				sw.WriteHeader(http.StatusUnauthorized)
				io.WriteString(sw, `{"errors":[{"code":"DENIED","message":"Your authorization token is invalid or has expired."}]}`+"\n")
				return
			}
			r.Header.Del("Authorization")
		}
		if opts.Truncate != nil && opts.Truncate(r) {
			tw := &truncatingWriter{statusWriter: sw}
			rp.ServeHTTP(tw, r)
			return
		}
		rp.ServeHTTP(sw, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: recorder: %v", err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	rec.Host = l.Addr().String()
	rec.URL = "http://" + rec.Host
	return rec
}

// Requests returns a copy of the requests seen so far.
func (r *Recorder) Requests() []RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RecordedRequest(nil), r.reqs...)
}

// Reset forgets the requests seen so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

var (
	_ http.ResponseWriter = (*statusWriter)(nil)
	_ http.Flusher        = (*statusWriter)(nil)
)

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// truncatingWriter passes on the first half of a body whose length is
// announced, then panics with http.ErrAbortHandler so the server drops the
// connection: the client sees a short body.
type truncatingWriter struct {
	*statusWriter
	limit, written int64
	armed          bool
}

var _ http.ResponseWriter = (*truncatingWriter)(nil)

func (w *truncatingWriter) WriteHeader(code int) {
	if cl := w.Header().Get("Content-Length"); cl != "" && code == http.StatusOK {
		var n int64
		for _, c := range cl {
			n = n*10 + int64(c-'0')
		}
		w.limit, w.armed = n/2, true
	}
	w.statusWriter.WriteHeader(code)
}

func (w *truncatingWriter) Write(b []byte) (int, error) {
	if !w.armed {
		return w.statusWriter.Write(b)
	}
	if left := w.limit - w.written; int64(len(b)) > left {
		n, _ := w.statusWriter.Write(b[:left])
		w.written += int64(n)
		w.Flush()
		panic(http.ErrAbortHandler)
	}
	n, err := w.statusWriter.Write(b)
	w.written += int64(n)
	return n, err
}
