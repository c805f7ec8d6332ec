package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/spacelift-io/tollgate/allowlist"
	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/internal/credsource"
	"github.com/spacelift-io/tollgate/proxy/cache"
)

func init() {
	// distribution logs every request through logrus; keep test output
	// readable.
	logrus.SetLevel(logrus.ErrorLevel)
	logrus.SetOutput(io.Discard)
}

// testHost is the canonical registry host the tests route to the in-process
// upstream through upstreams.<host>.endpoint.
const testHost = "registry.test"

// upstreamLog records what an upstream registry was asked.
type upstreamLog struct {
	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	Method, Path, Auth, Range, Accept string
}

func (l *upstreamLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Range"), strings.Join(r.Header.Values("Accept"), ",")})
}

func (l *upstreamLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = nil
}

// count returns how many requests matched method and a path containing
// substr ("" matches all).
func (l *upstreamLog) count(method, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.requests {
		if (method == "" || r.Method == method) && strings.Contains(r.Path, substr) {
			n++
		}
	}
	return n
}

func (l *upstreamLog) all() []recorded {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]recorded(nil), l.requests...)
}

// upstream is a distribution registry served in-process on loopback.
type upstream struct {
	*httptest.Server
	log  *upstreamLog
	host string // 127.0.0.1:port
	// failWith, when set, is the status every request gets.
	failWith atomic.Int32
}

type upstreamOpts struct {
	htpasswdUser, htpasswdPass string
}

// startUpstream starts distribution's registry with in-memory storage,
// recording every request it gets.
func startUpstream(t *testing.T, o upstreamOpts) *upstream {
	t.Helper()
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}, "delete": configuration.Parameters{"enabled": true}},
	}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	if o.htpasswdUser != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.htpasswdPass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(file, []byte(o.htpasswdUser+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "test", "path": file}}
	}
	app := handlers.NewApp(context.Background(), cfg)
	up := &upstream{log: &upstreamLog{}}
	up.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.log.add(r)
		if code := up.failWith.Load(); code != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(code))
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAVAILABLE","message":"test outage"}]}`))
			return
		}
		app.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		up.Close()
		_ = app.Shutdown()
	})
	u, _ := url.Parse(up.URL)
	up.host = u.Host
	return up
}

// push writes img to repo:tag on the upstream directly (not through the
// proxy), then forgets the requests it took.
func (u *upstream) push(t *testing.T, repo, tag string, img v1.Image, auth authn.Authenticator) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(u.host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("seeding %s: %v", ref, err)
	}
	u.log.reset()
	return ref
}

func (u *upstream) pushIndex(t *testing.T, repo, tag string, idx v1.ImageIndex) {
	t.Helper()
	ref, err := name.ParseReference(u.host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("seeding %s: %v", ref, err)
	}
	u.log.reset()
}

func randomImage(t *testing.T, layerSize int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// proxyFixture is a tollgate proxy on loopback in front of upstreams.
type proxyFixture struct {
	*httptest.Server
	srv   *Server
	cache *cache.Cache
	host  string // 127.0.0.1:port
	logs  *syncBuffer
}

type proxyOpts struct {
	allow       []string
	endpoints   map[string]string // canonical host -> URL
	mode        config.Mode
	credentials Credentials
	noCache     bool
	cacheDir    string
	shared      cache.SharedTier
	maxSize     int64 // cache budget; 0 is unlimited
}

func startProxy(t *testing.T, o proxyOpts) *proxyFixture {
	t.Helper()
	if o.allow == nil {
		o.allow = []string{testHost, "docker.io", "quay.io"}
	}
	policy, err := allowlist.New(o.allow)
	if err != nil {
		t.Fatal(err)
	}
	ups := map[string]config.Upstream{}
	for h, e := range o.endpoints {
		ups[h] = config.Upstream{Endpoint: e}
	}
	eps, err := EndpointsFromConfig(ups)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var c *cache.Cache
	if !o.noCache {
		dir := o.cacheDir
		if dir == "" {
			dir = filepath.Join(t.TempDir(), "cache")
		}
		c, err = cache.Open(context.Background(), cache.Options{Dir: dir, Logger: log, Shared: o.shared, MaxSize: o.maxSize})
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Options{
		Policy:      policy,
		Mode:        o.mode,
		Credentials: o.credentials,
		Endpoints:   eps,
		Cache:       c,
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		if c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = c.Close(ctx)
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	})
	u, _ := url.Parse(hs.URL)
	return &proxyFixture{Server: hs, srv: s, cache: c, host: u.Host, logs: logs}
}

// ref names repo:tag (or @digest) on the test upstream through the proxy,
// path style.
func (p *proxyFixture) ref(t *testing.T, repoAndTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(p.host+"/"+testHost+"/"+repoAndTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// pull fetches an image through the proxy with go-containerregistry and
// reads every layer, verifying digests.
func pull(ref name.Reference) (v1.Image, error) {
	// No retries: a failure must show, not be papered over by a retry.
	img, err := remote.Image(ref, remote.WithRetryPredicate(func(error) bool { return false }), remote.WithRetryStatusCodes())
	if err != nil {
		return nil, err
	}
	if err := readImage(img); err != nil {
		return nil, err
	}
	return img, nil
}

func readImage(img v1.Image) error {
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest as it reads
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		cerr := rc.Close()
		if err != nil {
			return err
		}
		if cerr != nil {
			return cerr
		}
	}
	return nil
}

// get sends a plain HTTP request to the proxy.
func (p *proxyFixture) do(t *testing.T, method, path string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, body
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// staticCredentials hands out one login for one host.
type staticCredentials struct {
	host, user, secret string
	mu                 sync.Mutex
	calls              int
}

func (s *staticCredentials) Credentials(_ context.Context, host string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if host != s.host {
		return "", "", fmt.Errorf("%s: %w", host, credsource.ErrNotFound)
	}
	return s.user, s.secret, nil
}
