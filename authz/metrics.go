package authz

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the plugin's Prometheus collectors, on a registry of their
// own. Label values come from the rules table (what, rule), never from the
// request, so their number is bounded.
type Metrics struct {
	registry  *prometheus.Registry
	decisions *prometheus.CounterVec
	denials   *prometheus.CounterVec
	latency   prometheus.Histogram
}

// NewMetrics creates the plugin's collectors:
//
//	tollgate_authz_requests_total{what,decision}  every AuthZReq answered
//	tollgate_authz_denials_total{rule}            refusals by the rule that decided
//	tollgate_authz_decision_seconds               time to decide one request
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_authz_requests_total",
			Help: "Daemon requests the authorization plugin answered, by what they are (other: no rule is about them) and decision (allow, deny).",
		}, []string{"what", "decision"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_authz_denials_total",
			Help: "Daemon requests refused, by the rule that refused them.",
		}, []string{"rule"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tollgate_authz_decision_seconds",
			Help:    "Time the plugin took to decide one request, from reading it to the verdict.",
			Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .01},
		}),
	}
	m.registry.MustRegister(m.decisions, m.denials, m.latency)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Registry is the registry the collectors are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) observe(d Decision, took time.Duration) {
	if m == nil {
		return
	}
	what, decision := d.What, "allow"
	if what == "" {
		what = "other"
	}
	if !d.Allowed {
		decision = "deny"
		m.denials.WithLabelValues(d.Rule).Inc()
	}
	m.decisions.WithLabelValues(what, decision).Inc()
	m.latency.Observe(took.Seconds())
}
