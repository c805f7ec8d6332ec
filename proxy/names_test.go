package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/allowlist/name"
)

// testRepo is the canonical name of repository path on testHost.
func testRepo(path string) name.Repository {
	return name.Repository{Host: testHost, Path: path}
}

// An alias of Docker Hub is folded once, at routing: the allowlist decides
// on docker.io/library/alpine (a pattern naming only that allows it), the
// upstream is asked for library/alpine, and the cache keys it there, so the
// next request under the canonical name is a hit.
func TestAliasIsOneNameFromRoutingToCache(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "library/alpine", "3.20", randomImage(t, 1024, 1), nil)
	p := startProxy(t, proxyOpts{
		allow:     []string{"docker.io/library/alpine"},
		endpoints: map[string]string{"docker.io": up.URL},
	})
	accept := http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}}
	resp, body := p.do(t, http.MethodGet, "/v2/registry-1.docker.io/alpine/manifests/3.20", accept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alias: %d %s", resp.StatusCode, body)
	}
	for _, r := range up.log.all() {
		if strings.Contains(r.Path, "/manifests/") && r.Path != "/v2/library/alpine/manifests/3.20" {
			t.Fatalf("the upstream was asked for %s, want the canonical library/alpine", r.Path)
		}
	}
	d := resp.Header.Get("Docker-Content-Digest")
	up.log.reset()
	resp, _ = p.do(t, http.MethodGet, "/v2/alpine/manifests/"+d, accept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("canonical name by digest: %d", resp.StatusCode)
	}
	if n := up.log.count("", "/manifests/"); n != 0 {
		t.Fatalf("the manifest fetched through the alias was not cached under the canonical name: %d upstream manifest requests", n)
	}
}

func TestRouteRefusesHostsTheHostRulesRefuse(t *testing.T) {
	for _, path := range []string{"/v2/127.1/app/manifests/v1", "/v2/ghcr.io:0/app/manifests/v1", "/v2/app/manifests/v1?ns=bad_host.example"} {
		u, _ := url.Parse(path)
		if _, err := parseRoute(u); err == nil || !strings.Contains(errorCode(err), "NAME_INVALID") {
			t.Errorf("%s: %v, want NAME_INVALID", path, err)
		}
	}
}
