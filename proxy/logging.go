package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// requestInfo collects what the per-request log line and metrics report.
// Handlers fill it in as they learn things.
type requestInfo struct {
	kind       string
	host       string
	repository string
	reference  string
	cache      string // hit, miss, stale, link, bypass, ""
	err        error
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

var (
	_ http.ResponseWriter = (*statusWriter)(nil)
	_ io.ReaderFrom       = (*statusWriter)(nil) // sendfile passes through
)

// statusWriter records the status and body size written.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile from a
// cached file to the client's socket) while counting.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

// bytesWritten is the body size written so far through w, if w counts.
func bytesWritten(w http.ResponseWriter) int64 {
	if sw, ok := w.(*statusWriter); ok {
		return sw.bytes
	}
	return 0
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests writes one log line per request and counts it. It never logs
// request headers: Authorization stays out of the log.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{kind: "other"}
		sw := &statusWriter{ResponseWriter: w}
		s.metrics.inflight.Inc()
		defer func() {
			s.metrics.inflight.Dec()
			status := sw.status
			aborted := false
			if v := recover(); v != nil {
				// http.ErrAbortHandler: the response was cut on purpose
				// (bad upstream bytes); log it, then let net/http close the
				// connection.
				aborted = true
				defer panic(v)
			}
			if status == 0 {
				status = http.StatusOK
				if ri.err != nil && errors.Is(ri.err, context.Canceled) {
					status = 499 // client closed the request before an answer
				}
			}
			outcome := strconv.Itoa(status/100) + "xx"
			if aborted {
				outcome = "aborted"
			}
			s.metrics.requests.WithLabelValues(ri.kind, methodLabel(r.Method), outcome).Inc()
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("kind", ri.kind),
				slog.Int("status", status),
				slog.Int64("bytes", sw.bytes),
				slog.Duration("duration", time.Since(start)),
			}
			if ri.host != "" {
				attrs = append(attrs, slog.String("host", ri.host), slog.String("repository", ri.repository))
			}
			if ri.cache != "" {
				attrs = append(attrs, slog.String("cache", ri.cache))
			}
			if aborted {
				attrs = append(attrs, slog.Bool("aborted", true))
			}
			level := slog.LevelInfo
			if ri.err != nil {
				attrs = append(attrs, slog.String("error", ri.err.Error()))
				if status >= 500 || aborted {
					level = slog.LevelWarn
				}
			}
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), infoKey{}, ri)))
	})
}
