package lease_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

func openS3(t *testing.T, params map[string]any, ns string) lease.Store {
	t.Helper()
	s, err := lease.Open(context.Background(), lease.SpecShared, ns, "s3", params)
	if err != nil {
		t.Fatalf("Open(shared, s3): %v", err)
	}
	return s
}

// TestS3 runs the lease behaviour on a real S3 server (SeaweedFS).
func TestS3(t *testing.T) {
	o := harness.StartSeaweedFS(t)
	params := o.SharedParameters("/fleet")
	testStore(t, engine{
		open: func(t *testing.T, ns string) lease.Store { return openS3(t, params, ns) },
		// Last-Modified and Date have one-second granularity; a 2s lease
		// keeps the test short and the margin visible.
		ttl: 2 * time.Second,
	})
}

func TestS3Unreachable(t *testing.T) {
	testUnreachable(t, func(t *testing.T, addr string) lease.Store {
		return openS3(t, map[string]any{
			"bucket": "b", "region": "us-east-1", "regionendpoint": "http://" + addr,
			"accesskey": "a", "secretkey": "s", "forcepathstyle": true,
		}, "down")
	})
}

func TestOpenSharedErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, driver string
		params       map[string]any
		want         string
	}{
		{"no tier", "", nil, "no shared tier"},
		{"filesystem without root", "filesystem", map[string]any{}, "rootdirectory"},
		{"gcs", "gcs", map[string]any{"bucket": "b"}, "redis://"},
		{"azure", "azure", map[string]any{"container": "c"}, "redis://"},
		{"no bucket", "s3", map[string]any{"region": "us-east-1"}, "bucket"},
		{"no region", "s3", map[string]any{"bucket": "b"}, "region"},
		{"half keys", "s3", map[string]any{"bucket": "b", "region": "us-east-1", "accesskey": "AKIAX", "secretkey": ""}, "together"},
		{"bad bool", "s3", map[string]any{"bucket": "b", "region": "us-east-1", "forcepathstyle": "sometimes"}, "forcepathstyle"},
	} {
		_, err := lease.Open(ctx, "", "ns", c.driver, c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}
