package cache

import "github.com/prometheus/client_golang/prometheus"

// Collector exports a Cache's Stats to Prometheus. Register it with the
// proxy's own registry (nothing is registered globally):
//
//	reg.MustRegister(cache.NewCollector(c))
//
// Metric names start with tollgate_cache_.
type Collector struct {
	c     *Cache
	descs []*prometheus.Desc
}

type metricDef struct {
	name, help string
	gauge      bool
	value      func(Stats) float64
}

var metricDefs = []metricDef{
	{"tollgate_cache_hits_total", "Reads of committed content (blobs and manifests).", false, func(s Stats) float64 { return float64(s.Hits) }},
	{"tollgate_cache_fills_total", "Fills started: one per digest however many clients asked.", false, func(s Stats) float64 { return float64(s.Misses) }},
	{"tollgate_cache_fill_joins_total", "Clients that streamed from a fill another client started.", false, func(s Stats) float64 { return float64(s.Joins) }},
	{"tollgate_cache_fill_errors_total", "Fills that did not commit: upstream error, truncated or corrupt content, timeout.", false, func(s Stats) float64 { return float64(s.FillErrors) }},
	{"tollgate_cache_upstream_bytes_total", "Bytes downloaded from upstream registries by fills.", false, func(s Stats) float64 { return float64(s.BytesFromUpstream) }},
	{"tollgate_cache_shared_bytes_total", "Bytes read from the shared tier by fills.", false, func(s Stats) float64 { return float64(s.BytesFromShared) }},
	{"tollgate_cache_hit_bytes_total", "Bytes served from committed content.", false, func(s Stats) float64 { return float64(s.BytesFromCache) }},
	{"tollgate_cache_served_bytes_total", "Bytes served to all readers, committed or streaming.", false, func(s Stats) float64 { return float64(s.BytesServed) }},
	{"tollgate_cache_evictions_total", "Entries evicted to stay within the size limit.", false, func(s Stats) float64 { return float64(s.Evictions) }},
	{"tollgate_cache_evicted_bytes_total", "Bytes evicted to stay within the size limit.", false, func(s Stats) float64 { return float64(s.EvictedBytes) }},
	{"tollgate_cache_shared_hits_total", "Fills served by the shared tier instead of upstream.", false, func(s Stats) float64 { return float64(s.SharedHits) }},
	{"tollgate_cache_shared_uploads_total", "Blobs uploaded to the shared tier.", false, func(s Stats) float64 { return float64(s.SharedUploads) }},
	{"tollgate_cache_shared_errors_total", "Failed uploads to the shared tier.", false, func(s Stats) float64 { return float64(s.SharedErrors) }},
	{"tollgate_cache_entries", "Committed entries.", true, func(s Stats) float64 { return float64(s.Entries) }},
	{"tollgate_cache_size_bytes", "Committed bytes.", true, func(s Stats) float64 { return float64(s.Size) }},
	{"tollgate_cache_inflight_fills", "Fills in progress.", true, func(s Stats) float64 { return float64(s.Inflight) }},
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Prometheus collector of c's Stats.
func NewCollector(c *Cache) *Collector {
	col := &Collector{c: c}
	for _, m := range metricDefs {
		col.descs = append(col.descs, prometheus.NewDesc(m.name, m.help, nil, nil))
	}
	return col
}

// Describe implements prometheus.Collector.
func (col *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range col.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (col *Collector) Collect(ch chan<- prometheus.Metric) {
	s := col.c.Stats()
	for i, m := range metricDefs {
		t := prometheus.CounterValue
		if m.gauge {
			t = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(col.descs[i], t, m.value(s))
	}
}
