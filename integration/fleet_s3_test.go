package integration

// Fleet mode on a real object store: the shared tier and the leases in one
// SeaweedFS bucket (S3 API, conditional writes), as on AWS.
//
// needs: skopeo docker-registry weed (scripts/install-test-deps.sh builds it)

import (
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// s3Tier renders the proxy.shared section for a SeaweedFS bucket.
func s3Tier(o *harness.ObjectStore) string {
	params := o.SharedParameters("/tollgate")
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("  shared:\n    driver: s3\n    parameters:\n")
	for _, k := range keys {
		switch v := params[k].(type) {
		case string:
			fmt.Fprintf(&b, "      %s: %q\n", k, v)
		default:
			fmt.Fprintf(&b, "      %s: %v\n", k, v)
		}
	}
	return b.String()
}

// TestFleetOnS3PullsEachBlobFromUpstreamOnce: three hosts, one SeaweedFS
// bucket for the tier and the leases (lease: shared), pull one new image at
// the same moment: each blob leaves the upstream once.
func TestFleetOnS3PullsEachBlobFromUpstreamOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 5*time.Minute)
	store := harness.StartSeaweedFS(t)
	f := startFleet(t, fleetOptions{hosts: 3, rate: 8 << 20, tier: s3Tier(store), lease: "shared"})
	img := f.reg.SeedImage(t, "team/runner", "latest", harness.ImageSpec{Layers: 3, LayerSize: 3 << 20})
	pullEverywhereAtOnce(ctx, t, f, "team/runner:latest", img)
	if errs := fleetMetric(t, f, "tollgate_fleet_leases_total", `result="error"`); errs != 0 {
		t.Errorf("lease errors on the S3 engine = %v", errs)
	}
	if peer := fleetMetric(t, f, "tollgate_fleet_peer_bytes_total"); peer == 0 {
		t.Error("no host read from a peer: the pulls did not overlap, so this run proved nothing about the fleet")
	}
}

// TestFleetOnS3StoreHungOrDown: the object store that holds both the tier
// and the leases stops answering (SIGSTOP), then is gone: pulls still
// complete from upstream, the lease skipped after its short timeout.
func TestFleetOnS3StoreHungOrDown(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 5*time.Minute)
	store := harness.StartSeaweedFS(t)
	f := startFleet(t, fleetOptions{hosts: 2, rate: 64 << 20, tier: s3Tier(store), lease: "shared"})
	img := f.reg.SeedImage(t, "team/runner", "v1", harness.ImageSpec{Layers: 2})
	img2 := f.reg.SeedImage(t, "team/runner", "v2", harness.ImageSpec{Layers: 2})
	sk := harness.NewSkopeo(t)

	store.Process.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { store.Process.Signal(syscall.SIGCONT) })
	pullImage(ctx, t, sk, f.proxies[0].Host+"/"+pubHost+"/team/runner:v1", img)
	if n := metric(t, f.proxies[0].Proxy, "tollgate_fleet_leases_total", `result="error"`); n != float64(len(img.Blobs())) {
		t.Errorf("lease errors with a hung store = %v, want %d", n, len(img.Blobs()))
	}
	store.Process.Signal(syscall.SIGCONT)
	store.Stop()
	pullImage(ctx, t, sk, f.proxies[1].Host+"/"+pubHost+"/team/runner:v2", img2)
	if n := metric(t, f.proxies[1].Proxy, "tollgate_fleet_leases_total", `result="error"`); n != float64(len(img2.Blobs())) {
		t.Errorf("lease errors with the store gone = %v, want %d", n, len(img2.Blobs()))
	}
}
