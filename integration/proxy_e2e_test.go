//go:build proxye2e

package integration

// End-to-end tests of `tollgate proxy` with real upstream registries
// (Debian's docker-registry) and real clients (skopeo, containerd, dockerd).
//
// needs: skopeo docker-registry apache2-utils containerd docker.io

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// Hosts the proxy tests route to. None of them resolves: every one is
// reached through upstreams.<host>.endpoint on loopback.
const (
	pubHost    = "registry.test" // anonymous docker-registry
	deniedHost = "denied.test"   // configured upstream, but not on the allowlist
)

// upstream is a docker-registry behind a recording reverse proxy.
type upstream struct {
	reg *harness.Registry
	rec *harness.Recorder
}

func startUpstream(t *testing.T, opts harness.RegistryOptions, recOpts harness.RecorderOptions) upstream {
	t.Helper()
	reg := harness.StartRegistry(t, opts)
	return upstream{reg: reg, rec: harness.StartRecorder(t, reg.URL, recOpts)}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pullAndCheck copies ref through skopeo and checks the top-level manifest
// digest and that every blob of the seeded content arrived.
func pullAndCheck(ctx context.Context, t *testing.T, sk *harness.Skopeo, ref, wantDigest string, wantBlobs []string, all bool) {
	t.Helper()
	dir, digest, err := sk.Pull(ctx, t, ref, all)
	if err != nil {
		t.Fatalf("skopeo copy %s: %v", ref, err)
	}
	if digest != wantDigest {
		t.Errorf("%s: manifest digest %s, upstream has %s", ref, digest, wantDigest)
	}
	got, err := harness.DirBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range wantBlobs {
		if !slices.Contains(got, b) {
			t.Errorf("%s: blob %s missing from the copy", ref, b)
		}
	}
}

func TestProxySkopeoPathRouting(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 3})
	idx := up.reg.SeedIndex(t, "team/multi", "v1", harness.ImageSpec{Layers: 2})
	oci := up.reg.SeedIndex(t, "team/oci", "v1", harness.ImageSpec{Layers: 2, OCI: true}, "linux/amd64", "linux/arm64", "linux/s390x")
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	sk := harness.NewSkopeo(t)
	base := px.Host + "/" + pubHost

	pullAndCheck(ctx, t, sk, base+"/team/app:v1", img.Digest, img.Blobs(), false)
	pullAndCheck(ctx, t, sk, base+"/team/app@"+img.Digest, img.Digest, img.Blobs(), false)
	pullAndCheck(ctx, t, sk, base+"/team/multi:v1", idx.Digest, idx.Blobs(), true)
	pullAndCheck(ctx, t, sk, base+"/team/oci:v1", oci.Digest, oci.Blobs(), true)
	// Warm: the same pulls again, now from the cache.
	pullAndCheck(ctx, t, sk, base+"/team/multi:v1", idx.Digest, idx.Blobs(), true)
	for _, b := range idx.Blobs() {
		if n := up.reg.BlobGets(b); n != 1 {
			t.Errorf("upstream served blob %s %d times for two pulls, want 1", b, n)
		}
	}
	if got, err := sk.ManifestDigest(ctx, base+"/team/app:v1"); err != nil || got != img.Digest {
		t.Errorf("skopeo inspect through the proxy: %s, %v; want %s", got, err, img.Digest)
	}
}

func TestProxyDockerHubDefaultRouting(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	hub := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	official := hub.reg.SeedImage(t, "library/alpine", "3.20", harness.ImageSpec{Layers: 2})
	user := hub.reg.SeedIndex(t, "someone/tool", "1", harness.ImageSpec{Layers: 1})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{"docker.io"},
		Upstreams: map[string]string{"docker.io": hub.rec.URL},
	})
	sk := harness.NewSkopeo(t)
	// No host in the path: Docker Hub, as Docker's registry-mirrors sends it;
	// a single-name image is library/<name>.
	pullAndCheck(ctx, t, sk, px.Host+"/alpine:3.20", official.Digest, official.Blobs(), false)
	pullAndCheck(ctx, t, sk, px.Host+"/library/alpine:3.20", official.Digest, official.Blobs(), false)
	pullAndCheck(ctx, t, sk, px.Host+"/someone/tool:1", user.Digest, user.Blobs(), true)
	// And docker.io named explicitly as the first path component.
	pullAndCheck(ctx, t, sk, px.Host+"/docker.io/library/alpine:3.20", official.Digest, official.Blobs(), false)
	for _, r := range hub.rec.Requests() {
		if strings.HasPrefix(r.Path, "/v2/alpine/") {
			t.Errorf("upstream got %s %s: Docker Hub single names must become library/", r.Method, r.Path)
		}
	}
}

func TestProxyContainerdMirrorNamespace(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	ctrd := harness.StartContainerd(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2})
	idx := up.reg.SeedIndex(t, "team/multi", "v1", harness.ImageSpec{Layers: 1})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	// The proxy itself records nothing; put a recorder in front of it to see ?ns=.
	front := harness.StartRecorder(t, px.URL, harness.RecorderOptions{})
	hosts := harness.HostsDir(t, pubHost, front.URL)
	for _, ref := range []string{pubHost + "/team/app:v1", pubHost + "/team/multi:v1"} {
		if _, err := ctrd.Ctr(ctx, "image", "pull", "--hosts-dir", hosts, "--snapshotter", "native", ref); err != nil {
			t.Fatalf("ctr image pull %s through the proxy: %v", ref, err)
		}
	}
	list, err := ctrd.Ctr(ctx, "image", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{img.Digest, idx.Digest} {
		if !strings.Contains(list, d) {
			t.Errorf("ctr image ls lacks %s:\n%s", d, list)
		}
	}
	ns := 0
	for _, r := range front.Requests() {
		if strings.Contains(r.RawQuery, "ns="+pubHost) {
			ns++
		}
		if strings.HasPrefix(r.Path, "/v2/"+pubHost+"/") {
			t.Errorf("containerd used path routing (%s), expected ?ns=", r.Path)
		}
	}
	if ns == 0 {
		t.Errorf("no request to the proxy carried ?ns=%s: %+v", pubHost, front.Requests())
	}
	if n := len(up.rec.Requests()); n == 0 {
		t.Error("upstream saw no request: the pull cannot have gone through the proxy")
	}
}

func TestProxyDockerPull(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	d := harness.StartDocker(t, harness.DockerOptions{})
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 3})
	idx := up.reg.SeedIndex(t, "team/multi", "v1", harness.ImageSpec{Layers: 2})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	for _, c := range []struct {
		ref, repo, digest, config string
	}{
		{px.Host + "/" + pubHost + "/team/app:v1", px.Host + "/" + pubHost + "/team/app", img.Digest, img.Config},
		{px.Host + "/" + pubHost + "/team/multi:v1", px.Host + "/" + pubHost + "/team/multi", idx.Digest, idx.Images[0].Config},
	} {
		if _, err := d.Run(ctx, "pull", c.ref); err != nil {
			t.Fatalf("docker pull %s: %v", c.ref, err)
		}
		digests, err := d.RepoDigests(ctx, c.ref)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.repo + "@" + c.digest; !slices.Contains(digests, want) {
			t.Errorf("docker pull %s recorded %v, want %s", c.ref, digests, want)
		}
		if id, err := d.ImageID(ctx, c.ref); err != nil || id != c.config {
			t.Errorf("docker pull %s: image ID %s, %v; want %s (linux/amd64)", c.ref, id, err, c.config)
		}
	}
}

// ociError is the body of an OCI distribution error response.
type ociError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func getJSONError(t *testing.T, method, url string) (int, ociError) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e ociError
	if method != http.MethodHead {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s %s: %s with a body that is not OCI error JSON: %q", method, url, resp.Status, body)
		}
	}
	return resp.StatusCode, e
}

func TestProxyDeniedHost(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 2*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 1})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost + "/team/allowed"},
		Upstreams: map[string]string{pubHost: up.rec.URL, deniedHost: up.rec.URL},
	})
	for _, path := range []string{
		"/v2/" + deniedHost + "/team/app/manifests/v1",
		"/v2/" + deniedHost + "/team/app/blobs/" + img.Layers[0],
		"/v2/" + deniedHost + "/team/app/tags/list",
		"/v2/team/app/manifests/v1?ns=" + deniedHost,
		"/v2/" + pubHost + "/team/app/manifests/v1", // host allowed, repository not
		"/v2/library/alpine/manifests/latest",       // Docker Hub, not on this allowlist
	} {
		status, e := getJSONError(t, http.MethodGet, px.URL+path)
		if status != http.StatusForbidden || len(e.Errors) == 0 || e.Errors[0].Code != "DENIED" {
			t.Errorf("GET %s: %d %+v, want 403 DENIED", path, status, e)
		} else if e.Errors[0].Message == "" {
			t.Errorf("GET %s: DENIED without a reason", path)
		}
	}
	sk := harness.NewSkopeo(t)
	if _, _, err := sk.Pull(ctx, t, px.Host+"/"+deniedHost+"/team/app:v1", false); err == nil {
		t.Error("skopeo pulled from a host that is not on the allowlist")
	} else if !strings.Contains(strings.ToLower(err.Error()), "denied") {
		t.Errorf("skopeo's error does not say denied: %v", err)
	}
	if reqs := up.rec.Requests(); len(reqs) != 0 {
		t.Errorf("a denied pull reached the upstream: %+v", reqs)
	}
}

func TestProxyConcurrentColdPullsFetchEachBlobOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 5*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/big", "v1", harness.ImageSpec{Layers: 4, LayerSize: 2 << 20})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	const clients = 20
	sk := harness.NewSkopeo(t)
	var wg sync.WaitGroup
	errs := make([]error, clients)
	digests := make([]string, clients)
	start := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, digests[i], errs[i] = sk.Pull(ctx, t, px.Host+"/"+pubHost+"/team/big:v1", false)
		}()
	}
	close(start)
	wg.Wait()
	for i := range clients {
		if errs[i] != nil {
			t.Errorf("client %d: %v", i, errs[i])
		} else if digests[i] != img.Digest {
			t.Errorf("client %d: digest %s, want %s", i, digests[i], img.Digest)
		}
	}
	for _, b := range img.Blobs() {
		if n := up.reg.BlobGets(b); n != 1 {
			t.Errorf("upstream served blob %s %d times to %d concurrent cold clients, want 1", b, n, clients)
		}
	}
}

func TestProxyUpstreamDownServesCache(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2})
	idx := up.reg.SeedIndex(t, "team/multi", "v1", harness.ImageSpec{Layers: 1})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	sk := harness.NewSkopeo(t)
	base := px.Host + "/" + pubHost
	pullAndCheck(ctx, t, sk, base+"/team/app:v1", img.Digest, img.Blobs(), false)
	pullAndCheck(ctx, t, sk, base+"/team/multi:v1", idx.Digest, idx.Blobs(), true)

	up.reg.Stop()
	if _, err := http.Get(up.rec.URL + "/v2/"); err == nil {
		// the recorder answers 502 once its backend is gone; make sure it does
		resp, _ := http.Get(up.rec.URL + "/v2/")
		if resp != nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				t.Fatalf("upstream still answers %d after stopping", resp.StatusCode)
			}
		}
	}
	pullAndCheck(ctx, t, sk, base+"/team/app:v1", img.Digest, img.Blobs(), false)
	pullAndCheck(ctx, t, sk, base+"/team/app@"+img.Digest, img.Digest, img.Blobs(), false)
	pullAndCheck(ctx, t, sk, base+"/team/multi:v1", idx.Digest, idx.Blobs(), true)
	// What was never cached cannot be served: a clear error, not a hang.
	if _, _, err := sk.Pull(ctx, t, base+"/team/never:v1", false); err == nil {
		t.Error("pull of an uncached image succeeded with the upstream down")
	}
}

func TestProxyTruncatedUpstreamBlobIsNotCached(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	var mu sync.Mutex
	truncated := map[string]bool{}
	var img harness.Image
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	img = reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2, LayerSize: 512 << 10})
	victim := img.Layers[1]
	rec := harness.StartRecorder(t, reg.URL, harness.RecorderOptions{
		// The first GET of the victim layer is cut in half; later ones are whole.
		Truncate: func(r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+victim) {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			if truncated[victim] {
				return false
			}
			truncated[victim] = true
			return true
		},
	})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: rec.URL},
	})
	sk := harness.NewSkopeo(t)
	ref := px.Host + "/" + pubHost + "/team/app:v1"
	if _, _, err := sk.Pull(ctx, t, ref, false); err == nil {
		t.Fatal("pull succeeded although the upstream cut a layer short")
	}
	pullAndCheck(ctx, t, sk, ref, img.Digest, img.Blobs(), false)
	if n := reg.BlobGets(victim); n < 2 {
		t.Errorf("the truncated layer was fetched %d times; the proxy must fetch it again, not serve the partial copy", n)
	}
}

// TestProxyPublicModeSendsNoCredentials: in public mode the proxy never
// sends an Authorization header upstream, even for a host it has a login
// for; a private upstream is then simply not pullable.
func TestProxyPublicModeSendsNoCredentials(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	pub := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := pub.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2})
	priv := startUpstream(t, harness.RegistryOptions{Username: "ci", Password: "pw-for-ci"}, harness.RecorderOptions{})
	priv.reg.SeedImage(t, "team/secret", "v1", harness.ImageSpec{Layers: 1})
	configDir := writeLoginConfigDir(t, map[string][2]string{
		pubHost:        {"ci", "pw-for-ci"},
		"private.test": {"ci", "pw-for-ci"},
	})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Mode:      "public",
		Allowlist: []string{pubHost, "private.test"},
		Upstreams: map[string]string{pubHost: pub.rec.URL, "private.test": priv.rec.URL},
	}, "SPACELIFT_DOCKER_CONFIG_DIR="+configDir)
	sk := harness.NewSkopeo(t)
	pullAndCheck(ctx, t, sk, px.Host+"/"+pubHost+"/team/app:v1", img.Digest, img.Blobs(), false)
	if _, _, err := sk.Pull(ctx, t, px.Host+"/private.test/team/secret:v1", false); err == nil {
		t.Error("public mode pulled a private image")
	}
	for _, u := range []upstream{pub, priv} {
		reqs := u.rec.Requests()
		if len(reqs) == 0 {
			t.Errorf("upstream %s saw no request", u.rec.Host)
		}
		for _, r := range reqs {
			if r.Authorization != "" {
				t.Errorf("public mode sent Authorization: %s upstream on %s %s", r.Authorization, r.Method, r.Path)
			}
		}
	}
}

// writeLoginConfigDir writes a SPACELIFT_DOCKER_CONFIG_DIR with docker
// config auths for the given hosts (host -> user, password).
func writeLoginConfigDir(t *testing.T, logins map[string][2]string) string {
	t.Helper()
	dir := t.TempDir()
	auths := map[string]map[string]string{}
	for host, up := range logins {
		auths[host] = map[string]string{"username": up[0], "password": up[1]}
	}
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestProxyConformance(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	d := seedConformance(t, up.reg, "conformance/repo1", "conformance/repo2")
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	d.Repo1 = pubHost + "/" + d.Repo1
	d.Repo2 = pubHost + "/" + d.Repo2
	s := runConformance(ctx, t, px.Host, d)
	t.Logf("OCI conformance through the proxy: result %s, %d passed, %d failed, %d errors, %d skipped, %d disabled",
		s.Result, s.Pass, s.Fail, s.Error, s.Skip, s.Disabled)
	if s.Fail > 0 || s.Error > 0 || s.Pass < 30 || s.Result != "Pass" {
		t.Errorf("OCI conformance suite through the proxy failed %v:\n%s", s.Failed, s.Output)
	}
	// Run it again: now everything is served warm from the cache.
	s = runConformance(ctx, t, px.Host, d)
	if s.Fail > 0 || s.Error > 0 || s.Pass < 30 || s.Result != "Pass" {
		t.Errorf("OCI conformance suite through the warm proxy failed %v:\n%s", s.Failed, s.Output)
	}
}
