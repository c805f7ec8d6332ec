package proxy

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestCachedTagServesWhileUpstreamFails(t *testing.T) {
	for _, outage := range []string{"503", "429", "down"} {
		t.Run(outage, func(t *testing.T) {
			up := startUpstream(t, upstreamOpts{})
			img := randomImage(t, 2048, 2)
			up.push(t, "team/app", "v1", img, nil)
			p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
			if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			switch outage {
			case "503":
				up.failWith.Store(http.StatusServiceUnavailable)
			case "429":
				up.failWith.Store(http.StatusTooManyRequests)
			case "down":
				up.Close()
			}
			want, _ := img.Digest()
			got, err := pull(p.ref(t, "team/app:v1"))
			if err != nil {
				t.Fatalf("pull by tag with upstream %s: %v", outage, err)
			}
			if d, _ := got.Digest(); d != want {
				t.Fatalf("stale tag served %s, want %s", d, want)
			}
			if _, err := pull(p.ref(t, "team/app@"+want.String())); err != nil {
				t.Fatalf("pull by digest with upstream %s: %v", outage, err)
			}
			if !strings.Contains(p.logs.String(), "serving the cached manifest") {
				t.Fatal("stale serve was not logged")
			}
			// An uncached tag cannot be served.
			resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v2", nil)
			if resp.StatusCode < 400 {
				t.Fatalf("uncached tag with upstream %s: %d %s", outage, resp.StatusCode, body)
			}
		})
	}
}

func TestCachedTagNotServedWhenUpstreamRefuses(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 1), nil)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatal(err)
	}
	// 401 and 404 are answers, not outages: access revoked or tag deleted
	// must reach the client.
	for _, code := range []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusForbidden} {
		up.failWith.Store(int32(code))
		resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
		if resp.StatusCode != code {
			t.Errorf("upstream %d: proxy answered %d %s", code, resp.StatusCode, body)
		}
		if resp.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("upstream %d: proxy leaked the upstream's challenge", code)
		}
	}
}

// outageCredentials serves a login until failing is set, then fails with an
// error that says whether it is temporary (as the ECR engine's errors do).
type outageCredentials struct {
	failing   atomic.Bool
	temporary bool
}

type credOutageError struct{ temporary bool }

func (e credOutageError) Error() string   { return "AWS API unavailable (test)" }
func (e credOutageError) Temporary() bool { return e.temporary }

func (c *outageCredentials) Credentials(_ context.Context, host string) (string, string, error) {
	if c.failing.Load() {
		return "", "", credOutageError{temporary: c.temporary}
	}
	return "user", "pass", nil
}

// A credential source in a temporary outage (ECR throttled or down past its
// retry budget) is an upstream outage too: a cached tag still serves. A
// lasting refusal (access denied) is not.
func TestCachedTagServesWhileCredentialsAreDown(t *testing.T) {
	for _, temporary := range []bool{true, false} {
		t.Run(fmt.Sprintf("temporary=%v", temporary), func(t *testing.T) {
			up := startUpstream(t, upstreamOpts{})
			img := randomImage(t, 2048, 2)
			up.push(t, "team/app", "v1", img, nil)
			dir := filepath.Join(t.TempDir(), "cache")
			creds := &outageCredentials{temporary: temporary}
			p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: creds, cacheDir: dir})
			if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			// A restarted proxy on the same cache: no login in memory.
			p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.cache.Close(ctx); err != nil {
				t.Fatal(err)
			}
			creds.failing.Store(true)
			p2 := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: creds, cacheDir: dir})
			got, err := pull(p2.ref(t, "team/app:v1"))
			if !temporary {
				if err == nil {
					t.Fatal("a lasting credential failure served the cached tag")
				}
				return
			}
			if err != nil {
				t.Fatalf("pull by tag during a credential outage: %v", err)
			}
			if d, _ := got.Digest(); d != mustDigest(t, img) {
				t.Fatalf("served %s, want the cached %s", d, mustDigest(t, img))
			}
		})
	}
}

func mustDigest(t *testing.T, img interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
