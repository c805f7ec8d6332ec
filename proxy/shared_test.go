package proxy

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/testwait"
	"github.com/spacelift-io/tollgate/proxy/cache"
)

func TestSharedTierServesSecondHost(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := randomImage(t, 32<<10, 3)
	up.push(t, "team/app", "v1", img, nil)
	up.push(t, "team/other", "v1", randomImage(t, 1024, 1), nil)
	sharedDir := filepath.Join(t.TempDir(), "shared")
	tier := func() cache.SharedTier {
		tr, err := cache.OpenDriverTier(context.Background(), "filesystem", map[string]any{"rootdirectory": sharedDir})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	eps := map[string]string{testHost: up.URL}
	hostA := startProxy(t, proxyOpts{endpoints: eps, shared: tier()})
	hostB := startProxy(t, proxyOpts{endpoints: eps, shared: tier()})

	if _, err := pull(hostA.ref(t, "team/app:v1")); err != nil {
		t.Fatal(err)
	}
	if n := up.log.count(http.MethodGet, "/blobs/"); n != 4 {
		t.Fatalf("host A: %d blob downloads, want 4", n)
	}
	// Host A uploads to the shared tier in the background; asked through
	// the tier, as host B will, not by the driver's file layout.
	layers, _ := img.Layers()
	seen := tier()
	testwait.Eventually(t, 10*time.Second, func() error {
		for _, l := range layers {
			d, _ := l.Digest()
			if _, err := seen.Stat(context.Background(), digest.Digest(d.String())); err != nil {
				return fmt.Errorf("layer %s not in the shared tier: %w", d, err)
			}
		}
		return nil
	})

	// Host B: manifests and access checks go upstream, layer bytes come
	// from the shared tier.
	up.log.reset()
	if _, err := pull(hostB.ref(t, "team/app:v1")); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		if n := up.log.count(http.MethodGet, "/blobs/"+d.String()); n != 0 {
			t.Errorf("host B downloaded layer %s from upstream %d times; the shared tier has it", d, n)
		}
	}

	// The shared tier does not bypass repository scoping: team/other has
	// none of these layers upstream, so host B refuses them.
	d, _ := layers[0].Digest()
	resp, _ := hostB.do(t, http.MethodGet, "/v2/"+testHost+"/team/other/blobs/"+d.String(), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("layer of team/app through team/other on host B: %d", resp.StatusCode)
	}
}
