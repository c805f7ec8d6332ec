package integration

// doctor --verify-cache against the cache of a real tollgate proxy.
//
// needs: skopeo docker-registry

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/integration/harness"
)

// TestDoctorVerifyCache fills a real proxy's cache, damages one blob on
// disk, and has doctor --verify-cache find and remove it; while the proxy
// runs, doctor says to stop it first.
func TestDoctorVerifyCache(t *testing.T) {
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	img := reg.SeedImage(t, "tollgate/example", "1", harness.ImageSpec{Layers: 2})
	proxy := harness.StartProxy(t, harness.BuildBinaries(t), harness.ProxyConfig{
		Upstreams: map[string]string{"quay.io": reg.URL},
	})
	s := harness.NewSkopeo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, _, err := s.Pull(ctx, t, proxy.Host+"/quay.io/tollgate/example:1", false); err != nil {
		t.Fatalf("pull through the proxy: %v", err)
	}
	h := newOpsHost(t, fakeaws.Options{})

	rep, code, _ := h.doctor(nil, "--config", proxy.ConfigPath, "--verify-cache")
	if c := rep.get(t, "proxy-cache-verify"); code != 1 || c.Status != "fail" || !strings.Contains(c.Fix, "stop the proxy") {
		t.Errorf("proxy running: exit %d, %+v; want a failure saying to stop it", code, c)
	}
	if c := rep.get(t, "proxy-cache"); c.Status != "ok" {
		t.Errorf("proxy-cache: %+v", c)
	}
	proxy.Stop()

	// Damage one layer blob in place.
	layer := strings.TrimPrefix(img.Layers[0], "sha256:")
	var damaged string
	filepath.WalkDir(proxy.CacheDir, func(p string, d os.DirEntry, err error) error {
		// The content file, not the repository's link of the same name.
		if err == nil && !d.IsDir() && filepath.Base(p) == layer && strings.Contains(p, string(filepath.Separator)+"blobs"+string(filepath.Separator)) {
			damaged = p
		}
		return nil
	})
	if damaged == "" {
		t.Fatalf("layer %s not found in the cache %s", layer, proxy.CacheDir)
	}
	if err := os.WriteFile(damaged, []byte("not the layer"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, code, _ = h.doctor(nil, "--config", proxy.ConfigPath, "--verify-cache")
	c := rep.get(t, "proxy-cache-verify")
	if code != 0 || c.Status != "warn" || !strings.Contains(c.Detail, "1 damaged") || !strings.Contains(c.Detail, img.Layers[0]) {
		t.Errorf("exit %d, %+v; want a warning naming the one damaged layer", code, c)
	}
	if _, err := os.Stat(damaged); err == nil {
		t.Error("the damaged blob is still in the cache")
	}
	rep, _, _ = h.doctor(nil, "--config", proxy.ConfigPath, "--verify-cache")
	if c := rep.get(t, "proxy-cache-verify"); c.Status != "ok" || !strings.Contains(c.Detail, "all match") {
		t.Errorf("second verification: %+v", c)
	}
}
