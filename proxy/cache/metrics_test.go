package cache

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 5000)
	d := u.add(data)
	c := openCache(t, t.TempDir(), Options{})
	for range 2 {
		r, err := c.Fetch(context.Background(), host, repo, d, -1, u.source(repo, d))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, r)
		r.Close()
		waitFills(t, c)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(c))
	want := `
# HELP tollgate_cache_fills_total Fills started: one per digest however many clients asked.
# TYPE tollgate_cache_fills_total counter
tollgate_cache_fills_total 1
# HELP tollgate_cache_hits_total Reads of committed content (blobs and manifests).
# TYPE tollgate_cache_hits_total counter
tollgate_cache_hits_total 1
# HELP tollgate_cache_upstream_bytes_total Bytes downloaded from upstream registries by fills.
# TYPE tollgate_cache_upstream_bytes_total counter
tollgate_cache_upstream_bytes_total 5000
# HELP tollgate_cache_hit_bytes_total Bytes served from committed content.
# TYPE tollgate_cache_hit_bytes_total counter
tollgate_cache_hit_bytes_total 5000
# HELP tollgate_cache_size_bytes Committed bytes.
# TYPE tollgate_cache_size_bytes gauge
tollgate_cache_size_bytes 5000
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"tollgate_cache_fills_total", "tollgate_cache_hits_total", "tollgate_cache_upstream_bytes_total",
		"tollgate_cache_hit_bytes_total", "tollgate_cache_size_bytes"); err != nil {
		t.Fatal(err)
	}
}
