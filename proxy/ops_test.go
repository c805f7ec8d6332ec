package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

func TestHealthReadyMetrics(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 1), nil)
	dir := filepath.Join(t.TempDir(), "cache")
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, cacheDir: dir, allow: []string{testHost + "/team/*"}})
	p.srv.cacheDir = dir

	resp, body := p.do(t, http.MethodGet, "/healthz", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	// Not listening through Serve yet (httptest serves the handler).
	resp, _ = p.do(t, http.MethodGet, "/readyz", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz before Serve: %d", resp.StatusCode)
	}
	p.srv.listening.Store(true)
	resp, body = p.do(t, http.MethodGet, "/readyz", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		resp, body = p.do(t, http.MethodGet, "/readyz", nil)
		_ = os.Chmod(dir, 0o700)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not writable") {
			t.Fatalf("readyz with a read-only cache: %d %s", resp.StatusCode, body)
		}
	} else {
		p.srv.cacheDir = filepath.Join(dir, "missing", "dir")
		resp, _ = p.do(t, http.MethodGet, "/readyz", nil)
		p.srv.cacheDir = dir
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("readyz with a missing cache dir: %d", resp.StatusCode)
		}
	}

	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatal(err)
	}
	_, _ = p.do(t, http.MethodGet, "/v2/"+testHost+"/other/app/manifests/v1", nil)
	_, body = p.do(t, http.MethodGet, "/metrics", nil)
	m := string(body)
	for _, want := range []string{
		`tollgate_proxy_requests_total{kind="manifest",method="GET",outcome="2xx"}`,
		`tollgate_proxy_requests_total{kind="manifest",method="GET",outcome="4xx"} 1`,
		`tollgate_proxy_denials_total{host="registry.test"} 1`,
		`tollgate_proxy_cache_requests_total{kind="blob",result="miss"} 2`,
		`tollgate_proxy_cache_requests_total{kind="blob",result="hit"} 2`,
		`tollgate_proxy_cache_requests_total{kind="manifest",result="hit"} 1`,
		`tollgate_proxy_served_bytes_total{source="cache"}`,
		`tollgate_proxy_served_bytes_total{source="upstream"}`,
		`tollgate_proxy_upstream_bytes_total{host="registry.test"}`,
		`tollgate_proxy_upstream_request_duration_seconds_bucket{host="registry.test",kind="manifest"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", m)
	}
}

func TestGracefulShutdownFinishesInFlightPull(t *testing.T) {
	img := randomImage(t, 512<<10, 1)
	f := newFakeRegistry(t, img)
	f.blobStarted = make(chan struct{}, 1)
	f.blobDelay = 300 * time.Millisecond
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(ctx, ln) }()

	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	base := "http://" + ln.Addr().String()
	type result struct {
		n   int64
		d   digest.Digest
		err error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/v2/" + testHost + "/bad/img/blobs/" + ld.String())
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		dg := digest.Canonical.Digester()
		n, err := io.Copy(dg.Hash(), resp.Body)
		got <- result{n, dg.Digest(), err}
	}()
	<-f.blobStarted // the pull is in flight
	cancel()        // SIGTERM
	// The listener closes as shutdown begins; poll rather than guess how
	// long that takes on a loaded machine.
	testwait.True(t, 5*time.Second, "new connections refused once shutdown began", func() bool {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(base + "/healthz")
		if err != nil {
			return true
		}
		resp.Body.Close()
		return false
	})
	r := <-got
	if r.err != nil || r.d.String() != ld.String() {
		t.Fatalf("in-flight pull during shutdown: %d bytes, digest %s, err %v\n%s", r.n, r.d, r.err, p.logs.String())
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

func TestParseRoute(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		path                       string
		kind                       routeKind
		host, repo, ref, clientTag string
		style                      routeStyle
		err                        string
	}{
		{path: "/v2/", kind: kindBase},
		{path: "/v2", kind: kindBase},
		{path: "/v2/ghcr.io/org/app/manifests/v1", kind: kindManifest, host: "ghcr.io", repo: "org/app", ref: "v1", style: stylePath},
		{path: "/v2/localhost:5000/app/blobs/" + d, kind: kindBlob, host: "localhost:5000", repo: "app", ref: d, style: stylePath},
		{path: "/v2/localhost/app/tags/list", kind: kindTags, host: "localhost", repo: "app", style: stylePath},
		{path: "/v2/alpine/manifests/3.20", kind: kindManifest, host: "docker.io", repo: "library/alpine", ref: "3.20", style: styleDefault},
		{path: "/v2/bitnami/redis/manifests/latest", kind: kindManifest, host: "docker.io", repo: "bitnami/redis", ref: "latest", style: styleDefault},
		{path: "/v2/alpine/manifests/3.20?ns=docker.io", kind: kindManifest, host: "docker.io", repo: "library/alpine", ref: "3.20", style: styleNS},
		{path: "/v2/my.group/app/manifests/v1?ns=registry.gitlab.com", kind: kindManifest, host: "registry.gitlab.com", repo: "my.group/app", ref: "v1", style: styleNS},
		{path: "/v2/Quay.IO/org/app/manifests/v1", kind: kindManifest, host: "quay.io", repo: "org/app", ref: "v1", style: stylePath},
		{path: "/v2/org/manifests/app/manifests/v1", kind: kindManifest, host: "docker.io", repo: "org/manifests/app", ref: "v1", style: styleDefault},
		{path: "/v2/org/app/manifests/" + d, kind: kindManifest, host: "docker.io", repo: "org/app", ref: d, style: styleDefault},
		{path: "/v2/_catalog", err: "UNSUPPORTED"},
		{path: "/v2/org/app/blobs/uploads/", err: "UNSUPPORTED"},
		{path: "/v2/org/app", err: "NOT_FOUND"},
		{path: "/v2/ORG/app/manifests/v1", err: "NAME_INVALID"},
		{path: "/v2/quay.io/manifests/v1", err: "NAME_INVALID"},
		{path: "/v3/org/app/manifests/v1", err: "NOT_FOUND"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			u, _ := url.Parse(tc.path)
			rt, err := parseRoute(u)
			if tc.err != "" {
				if err == nil || !strings.Contains(errorCode(err), tc.err) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rt.kind != tc.kind || rt.host != tc.host || rt.repository != tc.repo || rt.reference != tc.ref || (tc.kind != kindBase && rt.style != tc.style) {
				t.Fatalf("got %+v", rt)
			}
		})
	}
}

func errorCode(err error) string {
	var ec errcode.ErrorCoder
	if errors.As(err, &ec) {
		return ec.ErrorCode().String()
	}
	return ""
}

// After shutdown has started waiting for background work, a handler that is
// still running must not add more: it would race with the WaitGroup's Wait.
func TestNoBackgroundWorkAfterShutdown(t *testing.T) {
	p := startProxy(t, proxyOpts{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(ctx, ln) }()
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 1)
	p.srv.background(func(context.Context) { ran <- struct{}{} })
	// Work that was started is counted in the WaitGroup: once Wait
	// returns, it has run, however slowly its goroutine was scheduled.
	p.srv.fills.Wait()
	select {
	case <-ran:
		t.Fatal("background work started after shutdown")
	case <-time.After(50 * time.Millisecond):
	}
}
