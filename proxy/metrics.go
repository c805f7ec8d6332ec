package proxy

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the proxy's Prometheus collectors, registered on a registry
// of the Server's own (no package globals), served at /metrics.
type metrics struct {
	registry        *prometheus.Registry
	requests        *prometheus.CounterVec
	denials         *prometheus.CounterVec
	cacheResults    *prometheus.CounterVec
	bytesServed     *prometheus.CounterVec
	upstreamBytes   *prometheus.CounterVec
	upstreamLatency *prometheus.HistogramVec
	tokenRequests   *prometheus.CounterVec
	staleServes     *prometheus.CounterVec
	inflight        prometheus.Gauge

	// hosts bounds the registry host label values: hosts come from client
	// requests (any name for a denial, any name under a wildcard pattern
	// upstream), and every new value is a series held for the life of the
	// process.
	hostsMu sync.Mutex
	hosts   map[string]bool
	// deniedHosts is the same bound for the denial series, kept apart so
	// that clients asking for many denied hosts cannot use up the labels
	// of the registries the proxy really talks to.
	deniedHosts map[string]bool
}

// maxHostLabels is how many distinct registry hosts get series of their
// own; later ones are counted under "other".
const maxHostLabels = 200

// host returns the label value for upstream registry host h (one the
// allowlist let through).
func (m *metrics) host(h string) string {
	return m.label(m.hosts, h)
}

// deniedHost returns the label value for the host of a denied request.
func (m *metrics) deniedHost(h string) string {
	return m.label(m.deniedHosts, h)
}

func (m *metrics) label(seen map[string]bool, h string) string {
	m.hostsMu.Lock()
	defer m.hostsMu.Unlock()
	if seen[h] {
		return h
	}
	if len(seen) >= maxHostLabels {
		return "other"
	}
	seen[h] = true
	return h
}

// methodLabel keeps the method label to the methods HTTP defines; anything
// else a client sends is "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		hosts:    map[string]bool{},

		deniedHosts: map[string]bool{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_requests_total",
			Help: "Distribution API requests by kind (manifest, blob, tags, base, other), method and outcome (HTTP status class: 2xx, 3xx, 4xx, 5xx).",
		}, []string{"kind", "method", "outcome"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_denials_total",
			Help: "Requests refused by the allowlist, by registry host.",
		}, []string{"host"}),
		cacheResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_cache_requests_total",
			Help: "Cache lookups by kind and result: hit, miss, stale (cached tag served while the upstream failed), link (content cached for another repository, confirmed upstream).",
		}, []string{"kind", "result"}),
		bytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_served_bytes_total",
			Help: "Bytes of manifests and blobs sent to clients, by source: cache or upstream.",
		}, []string{"source"}),
		upstreamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_upstream_bytes_total",
			Help: "Bytes of manifests and blobs read from upstream registries, by host.",
		}, []string{"host"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_proxy_upstream_request_duration_seconds",
			Help:    "Time from sending an upstream request to its response headers, by host and kind (auth = ping and token handshake).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 13),
		}, []string{"host", "kind"}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_upstream_token_requests_total",
			Help: "Registry token exchanges sent to upstream token services, by registry host.",
		}, []string{"host"}),
		staleServes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_proxy_stale_tag_serves_total",
			Help: "Cached tags served without upstream revalidation because the upstream was unreachable, throttling or failing.",
		}, []string{"host"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_proxy_inflight_requests",
			Help: "Distribution API requests being served.",
		}),
	}
	m.registry.MustRegister(m.requests, m.denials, m.cacheResults, m.bytesServed,
		m.upstreamBytes, m.upstreamLatency, m.tokenRequests, m.staleServes, m.inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// cacheResult records how the cache answered a request, in its log line
// and the cache results metric.
func (m *metrics) cacheResult(ri *requestInfo, kind, result string) {
	ri.cache = result
	m.cacheResults.WithLabelValues(kind, result).Inc()
}

// registerAll registers more collectors (Options.Collectors).
func registerAll(reg *prometheus.Registry, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
