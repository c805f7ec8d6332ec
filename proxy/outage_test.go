package proxy

import (
	"net/http"
	"strings"
	"testing"
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
