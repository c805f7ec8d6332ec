package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/proxy/cache"
)

// Options configure a Server.
type Options struct {
	// Policy is asked about every repository before anything leaves the
	// host. Required.
	Policy Policy
	// Mode public never sends credentials upstream.
	Mode config.Mode
	// Credentials supplies upstream logins in private mode; nil pulls
	// anonymously.
	Credentials Credentials
	// Endpoints overrides where upstream hosts are reached (canonical host
	// -> endpoint).
	Endpoints map[string]Endpoint
	// Cache stores verified content; nil serves everything from upstream.
	Cache *cache.Cache
	// CacheDir is checked for writability by /readyz ("" skips the check).
	CacheDir string
	// Transport is the HTTP transport under all upstream traffic; nil uses
	// one with the system trust store and bounded dial/header timeouts.
	Transport *http.Transport
	// Logger receives one line per request and operational warnings.
	Logger *slog.Logger
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// and cache fills after its context ends. Default 30s.
	ShutdownTimeout time.Duration
}

// Server is the pull-through proxy. Its Handler serves the distribution API
// under /v2/ and the operational endpoints /healthz, /readyz and /metrics.
type Server struct {
	policy    Policy
	upstreams *upstreams
	cache     *cache.Cache
	cacheDir  string
	log       *slog.Logger
	metrics   *metrics
	shutdown  time.Duration
	listening atomic.Bool
	// fills tracks background work (cache fills that outlive the client
	// request) so that shutdown can wait for it.
	fills sync.WaitGroup
	// bgMu guards bgStopped: once shutdown waits on fills, no handler that
	// is still running may start more background work (a WaitGroup must
	// not be added to while it is being waited on).
	bgMu      sync.Mutex
	bgStopped bool
	// fillCtx is cancelled when the shutdown timeout runs out.
	fillCtx    context.Context
	cancelFill context.CancelFunc
	handler    http.Handler
	// tagLists holds full upstream tag lists briefly, for pagination.
	tagLists *gocache.Cache
	// manifestFlight merges concurrent identical upstream manifest requests.
	manifestFlight singleflight.Group
	// tagFlight merges concurrent fetches of one full tag list.
	tagFlight singleflight.Group
	// bodyIdleTimeout cuts a blob streamed straight from upstream (not
	// through the cache, which has its own) when the upstream sends nothing
	// for this long.
	bodyIdleTimeout time.Duration
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Policy == nil {
		return nil, errors.New("proxy: no allowlist policy: refusing to run a proxy that allows everything")
	}
	switch opts.Mode {
	case "", config.ModePrivate, config.ModePublic:
	default:
		return nil, fmt.Errorf("proxy: mode %q: want private or public", opts.Mode)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	m := newMetrics()
	creds := newCredentialStore(opts.Credentials, opts.Mode == config.ModePublic)
	s := &Server{
		policy:    opts.Policy,
		upstreams: newUpstreams(opts.Endpoints, opts.Transport, creds, log, m),
		cache:     opts.Cache,
		cacheDir:  opts.CacheDir,
		log:       log,
		metrics:   m,
		shutdown:  opts.ShutdownTimeout,
		tagLists:  gocache.New(tagListTTL, time.Minute),

		bodyIdleTimeout: time.Minute,
	}
	if opts.Cache != nil {
		m.registry.MustRegister(cache.NewCollector(opts.Cache))
	}
	s.fillCtx, s.cancelFill = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry}))
	mux.Handle("/v2/", s.logRequests(http.HandlerFunc(s.serveRegistry)))
	mux.Handle("/v2", s.logRequests(http.HandlerFunc(s.serveRegistry)))
	s.handler = mux
	return s, nil
}

// Handler serves the proxy.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets in-flight pulls and cache fills finish within
// the shutdown timeout, and returns. A nil error means a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	s.listening.Store(true)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.listening.Store(false)
		return err
	case <-ctx.Done():
	}
	s.listening.Store(false)
	s.log.Info("shutting down: waiting for in-flight requests", "timeout", s.shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		s.log.Warn("shutdown timeout reached with requests still in flight; closing them", "err", err)
		_ = hs.Close()
	}
	s.bgMu.Lock()
	s.bgStopped = true
	s.bgMu.Unlock()
	done := make(chan struct{})
	go func() { s.fills.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.log.Warn("shutdown timeout reached with cache fills still running; abandoning them")
		s.cancelFill()
		<-done
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz reports ready when the server is listening and the cache directory
// accepts writes.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.listening.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not listening\n"))
		return
	}
	if s.cacheDir != "" {
		if err := checkWritable(s.cacheDir); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "cache directory not writable: %v\n", err)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".readyz-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	rerr := os.Remove(filepath.Clean(name))
	return errors.Join(werr, cerr, rerr)
}

// background runs fn outside any client request, tracked for shutdown.
func (s *Server) background(fn func(ctx context.Context)) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgStopped {
		return // shutting down: optional work is not started
	}
	s.fills.Add(1)
	go func() {
		defer s.fills.Done()
		fn(s.fillCtx)
	}()
}
