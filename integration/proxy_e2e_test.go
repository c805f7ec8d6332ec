package integration

// End-to-end tests of `tollgate proxy` with real upstream registries
// (Debian's docker-registry) and real clients (skopeo, containerd, dockerd).
//
// needs: skopeo docker-registry apache2-utils containerd docker.io

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
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

// pullImage copies ref through skopeo into a dir: layout and checks the
// manifest digest and that every blob of the seeded image arrived (skopeo
// verifies each blob's digest as it copies).
func pullImage(ctx context.Context, t *testing.T, sk *harness.Skopeo, ref string, want harness.Image) {
	t.Helper()
	dir, digest, err := sk.Pull(ctx, t, ref, false)
	if err != nil {
		t.Fatalf("skopeo copy %s: %v", ref, err)
	}
	if digest != want.Digest {
		t.Errorf("%s: manifest digest %s, upstream has %s", ref, digest, want.Digest)
	}
	checkBlobs(t, ref, dir, want.Blobs())
}

// pullIndex copies every image of a multi-arch ref. skopeo 1.9 re-encodes
// an OCI index it copies to dir: (it drops fields it does not know, such
// as artifactType), so the index digest is checked on the raw bytes the
// proxy serves (skopeo inspect --raw), and each platform's manifest in
// the copy.
func pullIndex(ctx context.Context, t *testing.T, sk *harness.Skopeo, ref string, want harness.Index) {
	t.Helper()
	dir, _, err := sk.Pull(ctx, t, ref, true)
	if err != nil {
		t.Fatalf("skopeo copy --all %s: %v", ref, err)
	}
	if got, err := sk.ManifestDigest(ctx, ref); err != nil || got != want.Digest {
		t.Errorf("%s: index digest %s (%v), upstream has %s", ref, got, err, want.Digest)
	}
	for _, im := range want.Images {
		hex := strings.TrimPrefix(im.Digest, "sha256:")
		if got, err := harness.FileDigest(filepath.Join(dir, hex+".manifest.json")); err != nil || got != im.Digest {
			t.Errorf("%s: %s manifest %s: %s, %v", ref, im.Platform, im.Digest, got, err)
		}
	}
	checkBlobs(t, ref, dir, want.Blobs())
}

func checkBlobs(t *testing.T, ref, dir string, want []string) {
	t.Helper()
	got, err := harness.DirBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range want {
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

	pullImage(ctx, t, sk, base+"/team/app:v1", img)
	pullImage(ctx, t, sk, base+"/team/app@"+img.Digest, img)
	pullIndex(ctx, t, sk, base+"/team/multi:v1", idx)
	pullIndex(ctx, t, sk, base+"/team/oci:v1", oci)
	// Warm: the same pulls again, now from the cache.
	pullIndex(ctx, t, sk, base+"/team/multi:v1", idx)
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
	pullImage(ctx, t, sk, px.Host+"/alpine:3.20", official)
	pullImage(ctx, t, sk, px.Host+"/library/alpine:3.20", official)
	pullIndex(ctx, t, sk, px.Host+"/someone/tool:1", user)
	// And docker.io named explicitly as the first path component.
	pullImage(ctx, t, sk, px.Host+"/docker.io/library/alpine:3.20", official)
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
	// Docker Hub through the same mirror: docker.io is an upstream too.
	hub := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	alpine := hub.reg.SeedImage(t, "library/alpine", "3.20", harness.ImageSpec{Layers: 1})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost, "docker.io"},
		Upstreams: map[string]string{pubHost: up.rec.URL, "docker.io": hub.rec.URL},
	})
	// The proxy itself records nothing; put a recorder in front of it to see ?ns=.
	front := harness.StartRecorder(t, px.URL, harness.RecorderOptions{})
	hosts := harness.HostsDir(t, pubHost, front.URL, "docker.io")
	for _, ref := range []string{pubHost + "/team/app:v1", pubHost + "/team/multi:v1", "docker.io/library/alpine:3.20"} {
		if _, err := ctrd.Ctr(ctx, "image", "pull", "--hosts-dir", hosts, "--snapshotter", "native", ref); err != nil {
			t.Fatalf("ctr image pull %s through the proxy: %v", ref, err)
		}
	}
	list, err := ctrd.Ctr(ctx, "image", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if len(hub.rec.Requests()) == 0 || !slices.ContainsFunc(front.Requests(), func(r harness.RecordedRequest) bool {
		return strings.Contains(r.RawQuery, "ns=docker.io")
	}) {
		t.Error("the docker.io pull did not go through the proxy with ?ns=docker.io to the docker.io upstream")
	}
	for _, d := range []string{img.Digest, idx.Digest, alpine.Digest} {
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
	pullImage(ctx, t, sk, base+"/team/app:v1", img)
	pullIndex(ctx, t, sk, base+"/team/multi:v1", idx)

	up.reg.Stop()
	// The recorder answers 502 once its backend is gone; make sure it does.
	if resp, err := http.Get(up.rec.URL + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 500 {
			t.Fatalf("upstream still answers %d after stopping", resp.StatusCode)
		}
	}
	pullImage(ctx, t, sk, base+"/team/app:v1", img)
	pullImage(ctx, t, sk, base+"/team/app@"+img.Digest, img)
	pullIndex(ctx, t, sk, base+"/team/multi:v1", idx)
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
	pullImage(ctx, t, sk, ref, img)
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
	pullImage(ctx, t, sk, px.Host+"/"+pubHost+"/team/app:v1", img)
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

// slowUpstream is a registry behind a rate-capped relay, so that a blob
// takes a while to come through the proxy.
func slowUpstream(t *testing.T, bytesPerSecond float64) (*harness.Registry, *harness.Relay) {
	t.Helper()
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	return reg, harness.StartRelay(t, reg.Host, bytesPerSecond)
}

// readBlob GETs a blob and returns its digest and size; after is called
// once the first bytes have arrived.
func readBlob(ctx context.Context, url string, after func()) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	h := sha256.New()
	first := make([]byte, 64<<10)
	n, err := io.ReadFull(resp.Body, first)
	h.Write(first[:n])
	if err != nil {
		return "", int64(n), fmt.Errorf("first bytes: %w", err)
	}
	if after != nil {
		after()
	}
	m, err := io.Copy(h, resp.Body)
	total := int64(n) + m
	if err != nil {
		return "", total, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), total, nil
}

// TestProxyGracefulShutdownFinishesPulls: SIGTERM while a blob streams
// lets the pull finish with the right bytes, then the proxy exits cleanly.
func TestProxyGracefulShutdownFinishesPulls(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 2*time.Minute)
	bin := harness.BuildBinaries(t)
	reg, relay := slowUpstream(t, 4<<20)
	img := reg.SeedImage(t, "team/big", "v1", harness.ImageSpec{Layers: 1, LayerSize: 8 << 20})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: relay.URL},
	})
	url := px.URL + "/v2/" + pubHost + "/team/big/blobs/" + img.Layers[0]
	got, _, err := readBlob(ctx, url, func() { px.Process.Signal(syscall.SIGTERM) })
	if err != nil {
		t.Fatalf("pull in flight during SIGTERM: %v", err)
	}
	if got != img.Layers[0] {
		t.Fatalf("pull in flight during SIGTERM got digest %s, want %s", got, img.Layers[0])
	}
	select {
	case <-px.Process.Done():
		if err := px.Process.Err(); err != nil {
			t.Errorf("proxy exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("proxy still running 30 s after SIGTERM with no pull in flight")
	}
}

// TestProxyKill9MidDownloadServesNoPartialBlob: a proxy killed with
// SIGKILL while it fills a blob, restarted on the same cache, serves the
// whole blob (fetching it again), never the partial one.
func TestProxyKill9MidDownloadServesNoPartialBlob(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 2*time.Minute)
	bin := harness.BuildBinaries(t)
	reg, relay := slowUpstream(t, 4<<20)
	img := reg.SeedImage(t, "team/big", "v1", harness.ImageSpec{Layers: 2, LayerSize: 6 << 20})
	cfg := harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: relay.URL},
	}
	px := harness.StartProxy(t, bin, cfg)
	blobPath := "/v2/" + pubHost + "/team/big/blobs/" + img.Layers[1]
	if _, _, err := readBlob(ctx, px.URL+blobPath, px.Process.Kill); err == nil {
		t.Fatal("the download survived kill -9 of the proxy")
	}
	cfg.CacheDir = px.CacheDir
	px2 := harness.StartProxy(t, bin, cfg)
	got, n, err := readBlob(ctx, px2.URL+blobPath, nil)
	if err != nil || got != img.Layers[1] {
		t.Fatalf("after restart: digest %s (%d bytes), %v; want %s", got, n, err, img.Layers[1])
	}
	sk := harness.NewSkopeo(t)
	pullImage(ctx, t, sk, px2.Host+"/"+pubHost+"/team/big:v1", img)
	if gets := reg.BlobGets(img.Layers[1]); gets < 2 {
		t.Errorf("upstream served the killed blob %d times; the restarted proxy must fetch it again", gets)
	}
}

func doRequest(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}

// TestProxyHTTPSemantics checks, on the real binary, the parts of the
// registry API a client relies on beyond a plain pull.
func TestProxyHTTPSemantics(t *testing.T) {
	t.Parallel()
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2, LayerSize: 128 << 10})
	up.reg.SeedImage(t, "team/other", "v1", harness.ImageSpec{Layers: 1})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	base := px.URL + "/v2/" + pubHost
	layer := img.Layers[0]

	resp, _ := doRequest(t, http.MethodGet, px.URL+"/v2/", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %s, Docker-Distribution-API-Version %q", resp.Status, resp.Header.Get("Docker-Distribution-API-Version"))
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := doRequest(t, http.MethodGet, px.URL+p, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
	}

	t.Run("HEAD of a cold blob does not download it", func(t *testing.T) {
		up.rec.Reset()
		resp, _ := doRequest(t, http.MethodHead, base+"/team/app/blobs/"+layer, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != layer {
			t.Errorf("HEAD blob: %s, digest %q", resp.Status, resp.Header.Get("Docker-Content-Digest"))
		}
		for _, r := range up.rec.Requests() {
			if r.Method == http.MethodGet && strings.Contains(r.Path, "/blobs/") {
				t.Errorf("HEAD of a blob made the proxy GET it upstream: %s", r.Path)
			}
		}
	})

	t.Run("Range on a cold blob", func(t *testing.T) {
		resp, body := doRequest(t, http.MethodGet, base+"/team/app/blobs/"+img.Layers[1], map[string]string{"Range": "bytes=100-1123"})
		if resp.StatusCode != http.StatusPartialContent || len(body) != 1024 {
			t.Fatalf("Range GET: %s with %d bytes, want 206 with 1024", resp.Status, len(body))
		}
		resp, full := doRequest(t, http.MethodGet, base+"/team/app/blobs/"+img.Layers[1], nil)
		if resp.StatusCode != http.StatusOK || harness.Digest(full) != img.Layers[1] {
			t.Fatalf("full GET after a Range GET: %s, digest %s, want %s", resp.Status, harness.Digest(full), img.Layers[1])
		}
		if string(full[100:1124]) != string(body) {
			t.Error("the ranged bytes differ from the blob's bytes 100-1123")
		}
	})

	t.Run("cached blob is not served through another repository", func(t *testing.T) {
		if resp, body := doRequest(t, http.MethodGet, base+"/team/app/blobs/"+layer, nil); resp.StatusCode != http.StatusOK || harness.Digest(body) != layer {
			t.Fatalf("GET blob through its own repository: %s", resp.Status)
		}
		// team/other exists upstream but does not hold this blob.
		status, e := getJSONError(t, http.MethodGet, base+"/team/other/blobs/"+layer)
		if status != http.StatusNotFound || len(e.Errors) == 0 || e.Errors[0].Code != "BLOB_UNKNOWN" {
			t.Errorf("GET a cached blob through a repository that lacks it upstream: %d %+v, want 404 BLOB_UNKNOWN", status, e)
		}
	})

	t.Run("manifest by tag and digest, HEAD and GET", func(t *testing.T) {
		accept := map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"}
		for _, ref := range []string{"v1", img.Digest} {
			for _, m := range []string{http.MethodHead, http.MethodGet} {
				resp, body := doRequest(t, m, base+"/team/app/manifests/"+ref, accept)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != img.Digest ||
					resp.Header.Get("Content-Type") != img.MediaType {
					t.Errorf("%s manifest %s: %s, digest %q, type %q", m, ref, resp.Status, resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"))
				}
				if m == http.MethodGet && string(body) != string(img.Manifest) {
					t.Errorf("GET manifest %s: body differs from the upstream's", ref)
				}
			}
		}
		status, e := getJSONError(t, http.MethodGet, base+"/team/app/manifests/no-such-tag")
		if status != http.StatusNotFound || len(e.Errors) == 0 || e.Errors[0].Code != "MANIFEST_UNKNOWN" {
			t.Errorf("GET unknown tag: %d %+v, want 404 MANIFEST_UNKNOWN", status, e)
		}
	})

	t.Run("tags list", func(t *testing.T) {
		resp, body := doRequest(t, http.MethodGet, base+"/team/app/tags/list", nil)
		var tl struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &tl); resp.StatusCode != http.StatusOK || err != nil || !slices.Contains(tl.Tags, "v1") {
			t.Errorf("tags/list: %s %s (%v)", resp.Status, body, err)
		}
	})

	t.Run("push and delete are refused", func(t *testing.T) {
		up.rec.Reset()
		for _, c := range []struct{ method, path string }{
			{http.MethodPost, "/team/app/blobs/uploads/"},
			{http.MethodPut, "/team/app/manifests/v2"},
			{http.MethodDelete, "/team/app/manifests/" + img.Digest},
			{http.MethodDelete, "/team/app/blobs/" + layer},
		} {
			status, e := getJSONError(t, c.method, base+c.path)
			if status != http.StatusMethodNotAllowed || len(e.Errors) == 0 || e.Errors[0].Code != "UNSUPPORTED" {
				t.Errorf("%s %s: %d %+v, want 405 UNSUPPORTED", c.method, c.path, status, e)
			}
		}
		for _, r := range up.rec.Requests() {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				t.Errorf("a refused write reached the upstream: %s %s", r.Method, r.Path)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, body := doRequest(t, http.MethodGet, px.URL+"/metrics", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s", resp.Status)
		}
		for _, name := range []string{"tollgate_proxy_requests_total", "tollgate_proxy_upstream_bytes_total", "tollgate_proxy_served_bytes_total"} {
			if !strings.Contains(string(body), name) {
				t.Errorf("/metrics lacks %s after pulls", name)
			}
		}
	})
}

// TestProxyRestartKeepsWarmCache: the cache survives a clean restart; with
// the upstream gone, the restarted proxy serves the tag, the digest and the
// index it cached before.
func TestProxyRestartKeepsWarmCache(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2})
	idx := up.reg.SeedIndex(t, "team/multi", "v1", harness.ImageSpec{Layers: 1})
	cfg := harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	}
	px := harness.StartProxy(t, bin, cfg)
	sk := harness.NewSkopeo(t)
	pullImage(ctx, t, sk, px.Host+"/"+pubHost+"/team/app:v1", img)
	pullIndex(ctx, t, sk, px.Host+"/"+pubHost+"/team/multi:v1", idx)
	px.Stop()
	up.reg.Stop()

	cfg.CacheDir = px.CacheDir
	px2 := harness.StartProxy(t, bin, cfg)
	base := px2.Host + "/" + pubHost
	pullImage(ctx, t, sk, base+"/team/app:v1", img)
	pullImage(ctx, t, sk, base+"/team/app@"+img.Digest, img)
	pullIndex(ctx, t, sk, base+"/team/multi:v1", idx)
}

// TestProxyDockerRegistryMirror: the Docker engine with the proxy as its
// Docker Hub mirror (daemon registry-mirrors) pulls short names through it.
// dockerd reaches nothing but loopback (harness.LoopbackOnlyEnv), so the
// pull can only succeed through the mirror, never from Docker Hub itself.
func TestProxyDockerRegistryMirror(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	hub := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	official := hub.reg.SeedImage(t, "library/tgmirror", "1", harness.ImageSpec{Layers: 2})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{"docker.io"},
		Upstreams: map[string]string{"docker.io": hub.rec.URL},
	})
	d := harness.StartDocker(t, harness.DockerOptions{RegistryMirrors: []string{px.URL}})
	if _, err := d.Run(ctx, "pull", "tgmirror:1"); err != nil {
		t.Fatalf("docker pull tgmirror:1 through the mirror: %v", err)
	}
	digests, err := d.RepoDigests(ctx, "tgmirror:1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "tgmirror@" + official.Digest; !slices.Contains(digests, want) {
		t.Errorf("docker recorded %v, want %s", digests, want)
	}
	sawManifest := false
	for _, r := range hub.rec.Requests() {
		if strings.HasPrefix(r.Path, "/v2/library/tgmirror/manifests/") {
			sawManifest = true
		}
	}
	if !sawManifest {
		t.Error("the upstream saw no manifest request for library/tgmirror: the pull did not go through the proxy")
	}
}
