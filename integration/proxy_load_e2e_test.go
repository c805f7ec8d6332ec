package integration

// Proxy end-to-end tests that drive many clients or a whole external test
// suite: 20 concurrent cold pulls, and the OCI distribution-spec
// conformance suite through the proxy.
//
// needs: skopeo docker-registry

import (
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

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
