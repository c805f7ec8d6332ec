package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

// needs: skopeo docker-registry apache2-utils containerd docker.io

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRegistryAndSkopeo(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 2*time.Minute)
	reg := StartRegistry(t, RegistryOptions{})
	img := reg.SeedImage(t, "team/app", "v1", ImageSpec{Layers: 3})
	idx := reg.SeedIndex(t, "team/multi", "v1", ImageSpec{Layers: 2})

	sk := NewSkopeo(t)
	dir, digest, err := sk.Pull(ctx, t, img.Ref(), false)
	if err != nil {
		t.Fatal(err)
	}
	if digest != img.Digest {
		t.Errorf("pulled manifest digest %s, seeded %s", digest, img.Digest)
	}
	blobs, err := DirBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range img.Blobs() {
		if !slices.Contains(blobs, b) {
			t.Errorf("blob %s missing from the pulled copy (have %v)", b, blobs)
		}
	}

	_, digest, err = sk.Pull(ctx, t, idx.Ref(), true)
	if err != nil {
		t.Fatal(err)
	}
	if digest != idx.Digest {
		t.Errorf("pulled index digest %s, seeded %s", digest, idx.Digest)
	}
	if got, err := sk.ManifestDigest(ctx, idx.Ref()); err != nil || got != idx.Digest {
		t.Errorf("skopeo inspect digest = %s, %v; want %s", got, err, idx.Digest)
	}

	// The access log shows each layer fetched once by the single pull.
	testwait.Eventually(t, 5*time.Second, func() error {
		for _, l := range img.Layers {
			if n := reg.BlobGets(l); n != 1 {
				return fmt.Errorf("layer %s fetched %d times, want 1", l, n)
			}
		}
		return nil
	})
}

func TestRegistryHtpasswd(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 2*time.Minute)
	reg := StartRegistry(t, RegistryOptions{Username: "alice", Password: "s3cret-pass"})
	img := reg.SeedImage(t, "private/app", "1", ImageSpec{Layers: 1})
	sk := NewSkopeo(t)
	if _, _, err := sk.Pull(ctx, t, img.Ref(), false); err == nil {
		t.Fatal("anonymous pull from an htpasswd registry succeeded")
	}
	_, digest, err := sk.Pull(ctx, t, img.Ref(), false, "--src-creds", "alice:s3cret-pass")
	if err != nil {
		t.Fatal(err)
	}
	if digest != img.Digest {
		t.Errorf("digest %s, want %s", digest, img.Digest)
	}
}

func TestRegistryPullThroughCache(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 2*time.Minute)
	upstream := StartRegistry(t, RegistryOptions{})
	img := upstream.SeedImage(t, "library/base", "1", ImageSpec{Layers: 2})
	counter := countBlobGets(t, upstream.URL)
	cache := StartRegistry(t, RegistryOptions{ProxyRemoteURL: counter.URL})
	sk := NewSkopeo(t)
	ref := cache.Host + "/library/base:1"
	if _, digest, err := sk.Pull(ctx, t, ref, false); err != nil || digest != img.Digest {
		t.Fatalf("first pull through the cache: digest %s, %v; want %s", digest, err, img.Digest)
	}
	// distribution stores a proxied blob in the background after serving it.
	testwait.Eventually(t, 10*time.Second, func() error {
		for _, b := range img.Blobs() {
			if !cache.HasBlob(b) {
				return fmt.Errorf("cache has not stored %s", b)
			}
		}
		return nil
	})
	before := map[string]int{}
	for _, l := range img.Layers {
		before[l] = counter.gets(l)
		if before[l] == 0 {
			t.Errorf("the cache never asked the upstream for layer %s", l)
		}
	}
	if _, digest, err := sk.Pull(ctx, t, ref, false); err != nil || digest != img.Digest {
		t.Fatalf("second pull through the cache: digest %s, %v; want %s", digest, err, img.Digest)
	}
	// A (wrong) upstream fetch during the pull was counted as it arrived,
	// before the pull could finish: no need to wait for a log.
	for _, l := range img.Layers {
		if n := counter.gets(l); n != before[l] {
			t.Errorf("warm pull fetched layer %s from upstream again (%d -> %d)", l, before[l], n)
		}
	}
	t.Logf("distribution 2.8 cold pull fetched each layer from upstream %v times", before)
}

func TestRecorderBasicAuth(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 2*time.Minute)
	reg := StartRegistry(t, RegistryOptions{})
	img := reg.SeedImage(t, "ecr/app", "1", ImageSpec{Layers: 1})
	rec := StartRecorder(t, reg.URL, RecorderOptions{
		Authorize: func(u, p string) bool { return u == "AWS" && p == "minted-token" },
	})
	sk := NewSkopeo(t)
	ref := rec.Host + "/ecr/app:1"
	if _, _, err := sk.Pull(ctx, t, ref, false, "--src-creds", "AWS:wrong"); err == nil {
		t.Fatal("pull with a wrong token succeeded")
	}
	if _, digest, err := sk.Pull(ctx, t, ref, false, "--src-creds", "AWS:minted-token"); err != nil || digest != img.Digest {
		t.Fatalf("pull with the token: digest %s, %v", digest, err)
	}
	sawBasic := false
	for _, r := range rec.Requests() {
		if r.Authorization == "Basic" && r.Status == http.StatusOK {
			sawBasic = true
		}
	}
	if !sawBasic {
		t.Errorf("recorder saw no authorised Basic request: %+v", rec.Requests())
	}
}

func TestRecorderTruncate(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 2*time.Minute)
	reg := StartRegistry(t, RegistryOptions{})
	img := reg.SeedImage(t, "broken/app", "1", ImageSpec{Layers: 1, LayerSize: 256 << 10})
	rec := StartRecorder(t, reg.URL, RecorderOptions{
		Truncate: func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/blobs/"+img.Layers[0]) },
	})
	sk := NewSkopeo(t)
	if _, _, err := sk.Pull(ctx, t, rec.Host+"/broken/app:1", false); err == nil {
		t.Fatal("pull of a truncated layer succeeded")
	}
}

func TestContainerdMirror(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 3*time.Minute)
	ctrd := StartContainerd(t)
	reg := StartRegistry(t, RegistryOptions{})
	img := reg.SeedImage(t, "team/app", "v1", ImageSpec{Layers: 2})
	rec := StartRecorder(t, reg.URL, RecorderOptions{})
	hosts := HostsDir(t, "registry.test", rec.URL)
	out, err := ctrd.Ctr(ctx, "image", "pull", "--hosts-dir", hosts, "--snapshotter", "native", "registry.test/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ctr pull:\n%s", out)
	list, err := ctrd.Ctr(ctx, "image", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, img.Digest) {
		t.Errorf("ctr image ls does not show digest %s:\n%s", img.Digest, list)
	}
	ns := false
	for _, r := range rec.Requests() {
		if strings.Contains(r.RawQuery, "ns=registry.test") {
			ns = true
		}
	}
	if !ns {
		t.Errorf("containerd sent no ?ns=registry.test to the mirror: %+v", rec.Requests())
	}
}

func TestDockerPull(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 3*time.Minute)
	d := StartDocker(t, DockerOptions{})
	reg := StartRegistry(t, RegistryOptions{})
	img := reg.SeedImage(t, "team/app", "v1", ImageSpec{Layers: 2})
	if _, err := d.Run(ctx, "pull", img.Ref()); err != nil {
		t.Fatal(err)
	}
	digests, err := d.RepoDigests(ctx, img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if want := reg.Host + "/team/app@" + img.Digest; !slices.Contains(digests, want) {
		t.Errorf("docker recorded %v, want %s", digests, want)
	}
	id, err := d.ImageID(ctx, img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if id != img.Config {
		t.Errorf("image ID %s, want config digest %s", id, img.Config)
	}
}

func TestBuildBinaries(t *testing.T) {
	dir := BuildBinaries(t)
	if _, err := os.Stat(filepath.Join(dir, "tollgate")); err != nil {
		t.Fatal(err)
	}
	if dir2 := BuildBinaries(t); dir2 != dir {
		t.Errorf("second call built again into %s", dir2)
	}
	out, err := Run(ctxFor(t, time.Minute), nil, filepath.Join(dir, "tollgate"), "version")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("tollgate version: %q, %v", out, err)
	}
}

// blobGetCounter stands between a pull-through cache and its upstream and
// counts each blob GET when it arrives, before a byte of it is answered: a
// count read after a pull has ended includes every fetch the pull made.
type blobGetCounter struct {
	URL string

	mu     sync.Mutex
	byBlob map[string]int
}

func countBlobGets(t *testing.T, backend string) *blobGetCounter {
	t.Helper()
	target, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	c := &blobGetCounter{byBlob: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, d, ok := strings.Cut(r.URL.Path, "/blobs/"); ok && r.Method == http.MethodGet {
			c.mu.Lock()
			c.byBlob[d]++
			c.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *blobGetCounter) gets(digest string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byBlob[digest]
}

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// TestDockerResolvesOnLoopbackOnly: dockerd looks registry names up
// itself, whatever its proxy settings (docker.io when it pulls through a
// mirror, any other registry host to decide whether it is insecure), so
// the harness must give it a resolver on loopback or those queries leave
// the machine. Its /etc/resolv.conf, seen from its own mount namespace, must
// be the harness's and name only loopback servers.
func TestDockerResolvesOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	d := StartDocker(t, DockerOptions{})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", d.Process.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(d.ResolvConf)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(want) {
		t.Fatalf("dockerd resolves with\n%s\nnot the harness's loopback-only resolv.conf\n%s", b, want)
	}
	servers := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			servers++
			if ip := net.ParseIP(f[1]); ip == nil || !ip.IsLoopback() {
				t.Errorf("dockerd's resolver %s is not on loopback", f[1])
			}
		}
	}
	if servers == 0 {
		t.Error("dockerd's resolv.conf names no nameserver")
	}
}
