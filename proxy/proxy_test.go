package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPullThroughPathStyle(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := randomImage(t, 4096, 3)
	up.push(t, "team/app", "v1", img, nil)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})

	got, err := pull(p.ref(t, "team/app:v1"))
	if err != nil {
		t.Fatalf("pull through proxy: %v", err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("digest through proxy %s, upstream %s", d, want)
	}
	blobGets := up.log.count(http.MethodGet, "/blobs/")
	if blobGets != 4 { // config + 3 layers
		t.Fatalf("upstream saw %d blob GETs for a cold pull, want 4", blobGets)
	}

	// Warm: by tag (revalidated with HEAD) and by digest, no blob traffic.
	up.log.reset()
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatalf("warm pull: %v", err)
	}
	if _, err := pull(p.ref(t, "team/app@"+want.String())); err != nil {
		t.Fatalf("warm pull by digest: %v", err)
	}
	if n := up.log.count(http.MethodGet, ""); n != 0 {
		t.Fatalf("warm pulls sent %d GETs upstream: %+v", n, up.log.all())
	}
	if n := up.log.count(http.MethodHead, "/manifests/v1"); n != 1 {
		t.Fatalf("tag revalidation: %d HEADs upstream, want 1: %+v", n, up.log.all())
	}
}

func TestRoutingStyles(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := randomImage(t, 1024, 1)
	up.push(t, "library/alpine", "3.20", img, nil)
	up.push(t, "team/app", "v1", img, nil)
	want, _ := img.Digest()
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL, "docker.io": up.URL}})

	accept := http.Header{"Accept": {"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"}}
	for _, tc := range []struct {
		name, path string
	}{
		{"path style", "/v2/" + testHost + "/team/app/manifests/v1"},
		{"containerd ns", "/v2/team/app/manifests/v1?ns=" + testHost},
		{"docker hub default", "/v2/alpine/manifests/3.20"},
		{"docker hub library", "/v2/library/alpine/manifests/3.20"},
		{"docker hub path style", "/v2/docker.io/alpine/manifests/3.20"},
		{"docker hub alias", "/v2/index.docker.io/library/alpine/manifests/3.20"},
		{"docker hub ns", "/v2/library/alpine/manifests/3.20?ns=docker.io"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := p.do(t, http.MethodGet, tc.path, accept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Docker-Content-Digest"); got != want.String() {
				t.Fatalf("digest %q, want %s", got, want)
			}
		})
	}

	// A full pull in the Docker Hub mirror style (no host in the path).
	ref, err := name.ParseReference(p.host+"/library/alpine:3.20", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pull(ref); err != nil {
		t.Fatalf("pull docker hub style: %v", err)
	}
}

func TestDeniedNeverReachesUpstream(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 1), nil)
	p := startProxy(t, proxyOpts{
		allow:     []string{testHost + "/allowed"},
		endpoints: map[string]string{testHost: up.URL, "evil.example": up.URL},
	})
	for _, path := range []string{
		"/v2/" + testHost + "/team/app/manifests/v1",
		"/v2/evil.example/team/app/manifests/v1",
		"/v2/team/app/blobs/sha256:" + strings.Repeat("a", 64) + "?ns=evil.example",
		"/v2/" + testHost + "/team/app/tags/list",
	} {
		resp, body := p.do(t, http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403: %s", path, resp.StatusCode, body)
		}
		var env struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != 1 || env.Errors[0].Code != "DENIED" {
			t.Fatalf("%s: body %s, want one DENIED error", path, body)
		}
		if env.Errors[0].Message == "" {
			t.Fatalf("%s: DENIED without the policy's reason", path)
		}
	}
	if n := len(up.log.all()); n != 0 {
		t.Fatalf("upstream saw %d requests for denied pulls: %+v", n, up.log.all())
	}
}

func TestConcurrentColdPullsFetchEachBlobOnce(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := randomImage(t, 1<<20, 4)
	up.push(t, "team/big", "v1", img, nil)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})

	const clients = 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := pull(p.ref(t, "team/big:v1")); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent pull: %v", err)
	}
	layers, _ := img.Layers()
	cfgDigest, _ := img.ConfigName()
	for _, l := range layers {
		d, _ := l.Digest()
		if n := up.log.count(http.MethodGet, "/blobs/"+d.String()); n != 1 {
			t.Errorf("layer %s fetched %d times from upstream, want 1", d, n)
		}
	}
	if n := up.log.count(http.MethodGet, "/blobs/"+cfgDigest.String()); n != 1 {
		t.Errorf("config fetched %d times from upstream, want 1", n)
	}
	// Manifest GETs count as pulls on Docker Hub: concurrent identical
	// ones are merged (a client arriving after the first finished sends
	// its own revalidation HEAD, never a second GET of a cached manifest).
	if n := up.log.count(http.MethodGet, "/manifests/"); n > 2 {
		t.Errorf("%d concurrent clients made %d manifest GETs upstream", clients, n)
	} else {
		t.Logf("%d concurrent cold clients: %d manifest GET(s), %d HEAD(s) upstream", clients, n, up.log.count(http.MethodHead, "/manifests/"))
	}
}

func TestPushAndDeleteUnsupported(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/v2/" + testHost + "/team/app/blobs/uploads/"},
		{http.MethodPut, "/v2/" + testHost + "/team/app/manifests/v1"},
		{http.MethodDelete, "/v2/" + testHost + "/team/app/manifests/v1"},
		{http.MethodPatch, "/v2/" + testHost + "/team/app/blobs/uploads/abc"},
		{http.MethodGet, "/v2/" + testHost + "/team/app/blobs/uploads/abc"},
	} {
		resp, body := p.do(t, tc.method, tc.path, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"UNSUPPORTED"`) {
			t.Errorf("%s %s: %d %s, want 405 UNSUPPORTED", tc.method, tc.path, resp.StatusCode, body)
		}
	}
	// And the real client's push fails cleanly.
	ref := p.ref(t, "team/app:pushed")
	if err := remote.Write(ref, randomImage(t, 100, 1)); err == nil {
		t.Fatal("push through the proxy succeeded")
	}
	for _, r := range up.log.all() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Fatalf("a push sent %s %s upstream", r.Method, r.Path)
		}
	}
}

func TestBaseEndpoint(t *testing.T) {
	p := startProxy(t, proxyOpts{})
	resp, body := p.do(t, http.MethodGet, "/v2/", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("GET /v2/: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}
