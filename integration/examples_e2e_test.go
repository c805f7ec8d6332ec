package integration

// The example mirror configurations, used as they ship, by the real clients
// they are for, pulling through a real `tollgate proxy` from a real
// registry. Every address is on loopback: the registries' own locations
// (where a client falls back when the mirror fails) are pointed at a
// loopback port where nothing listens, so a broken example fails the test
// instead of sending a request off the machine.
//
// needs: skopeo docker-registry containerd

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// opsDeadLoopback is a loopback address where nothing listens.
const opsDeadLoopback = "127.0.0.1:1"

func TestExamplePodmanRegistriesConfPullsThroughProxy(t *testing.T) {
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	img := reg.SeedImage(t, "tollgate/example", "1", harness.ImageSpec{Layers: 2})
	proxy := harness.StartProxy(t, harness.BuildBinaries(t), harness.ProxyConfig{
		Upstreams: map[string]string{"quay.io": reg.URL},
	})

	conf := string(opsExample(t, "podman/registries.conf"))
	conf = strings.ReplaceAll(conf, "127.0.0.1:5000", proxy.Host)
	// A registry's own location has no path; a mirror's has the upstream host.
	conf = regexp.MustCompile(`(?m)^location = "[^"/]+"$`).ReplaceAllString(conf, `location = "`+opsDeadLoopback+`"`)
	if !strings.Contains(conf, `location = "`+proxy.Host+`/quay.io"`) {
		t.Fatalf("example has no quay.io mirror on the proxy:\n%s", conf)
	}
	path := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := harness.NewSkopeo(t)
	// A safety net: should skopeo ever go to quay.io itself, the request
	// goes to a dead proxy on loopback, without even a DNS lookup. Loopback
	// addresses are never proxied.
	dead := "http://" + opsDeadLoopback
	s.Env = []string{"HTTP_PROXY=" + dead, "HTTPS_PROXY=" + dead, "http_proxy=" + dead, "https_proxy=" + dead, "NO_PROXY=", "no_proxy="}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF; --registries-conf is
	// what it reads.
	out := filepath.Join(t.TempDir(), "image")
	if _, err := s.Run(ctx, "--registries-conf", path, "copy", "--retry-times", "0", "docker://quay.io/tollgate/example:1", "dir:"+out); err != nil {
		proxy.Process.LogTail(t, 30)
		t.Fatalf("skopeo copy through the example registries.conf: %v", err)
	}
	digest, err := harness.FileDigest(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if digest != img.Digest {
		t.Errorf("pulled manifest %s, seeded %s", digest, img.Digest)
	}
	if n := len(reg.Requests()); n == 0 {
		t.Error("the registry saw no request: the pull did not go through the proxy to it")
	}
}

func TestExampleContainerdHostsTomlPullsThroughProxy(t *testing.T) {
	ctrd := harness.StartContainerd(t)
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	img := reg.SeedImage(t, "library/example", "1", harness.ImageSpec{Layers: 2})
	proxy := harness.StartProxy(t, harness.BuildBinaries(t), harness.ProxyConfig{
		Upstreams: map[string]string{"docker.io": reg.URL},
	})

	hosts := t.TempDir()
	toml := string(opsExample(t, "containerd/certs.d/docker.io/hosts.toml"))
	toml = strings.ReplaceAll(toml, "127.0.0.1:5000", proxy.Host)
	toml = strings.ReplaceAll(toml, `server = "https://registry-1.docker.io"`, `server = "http://`+opsDeadLoopback+`"`)
	if !strings.Contains(toml, opsDeadLoopback) || !strings.Contains(toml, proxy.Host) {
		t.Fatalf("example hosts.toml did not take the test addresses:\n%s", toml)
	}
	if err := os.MkdirAll(filepath.Join(hosts, "docker.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hosts, "docker.io", "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref := "docker.io/library/example:1"
	if _, err := ctrd.Ctr(ctx, "image", "pull", "--hosts-dir", hosts, "--snapshotter", "native", ref); err != nil {
		proxy.Process.LogTail(t, 30)
		t.Fatalf("ctr image pull %s with the example hosts.toml: %v", ref, err)
	}
	list, err := ctrd.Ctr(ctx, "image", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, img.Digest) {
		t.Errorf("ctr image ls lacks %s:\n%s", img.Digest, list)
	}
}
