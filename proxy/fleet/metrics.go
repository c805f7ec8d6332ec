package fleet

import "github.com/prometheus/client_golang/prometheus"

// Lease results counted in tollgate_fleet_leases_total.
const (
	leaseTaken   = "taken"   // this host became the filler
	leaseHeld    = "held"    // another host fills; this one streams from it
	leaseLost    = "lost"    // another host took the lease while this one filled
	leaseExpired = "expired" // this host's lease ran out before it was renewed
	leaseError   = "error"   // the lease engine failed or was slow: the fill went upstream
)

// Metrics are the fleet's Prometheus collectors. The proxy registers them
// on its own registry (Node.Collectors); nothing is registered globally.
type Metrics struct {
	leases     *prometheus.CounterVec
	peerBytes  prometheus.Counter
	peerErrors *prometheus.CounterVec
	served     prometheus.Counter
	refused    *prometheus.CounterVec
	// memberWrites counts writes of this host's member record.
	memberWrites *prometheus.CounterVec
}

func newMetrics() *Metrics {
	m := &Metrics{
		leases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_fleet_leases_total",
			Help: "Fleet fill leases by result: taken (this host fills from upstream), held (another host fills; this one streams from it), lost (taken over while filling), expired (not renewed in time), error (lease engine down or slow: filled from upstream).",
		}, []string{"result"}),
		peerBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_fleet_peer_bytes_total",
			Help: "Blob bytes this host read from fleet peers.",
		}),
		peerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_fleet_peer_errors_total",
			Help: "Failed reads from fleet peers by reason (unreachable, refused, status, broken, corrupt); each one sent the fill upstream.",
		}, []string{"reason"}),
		served: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_fleet_peer_served_bytes_total",
			Help: "Blob bytes this host served to fleet peers on its peer listener.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_fleet_peer_refused_total",
			Help: "Requests on the peer listener refused before any content was read, by reason (unsigned, bad_signature, stale).",
		}, []string{"reason"}),
		memberWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_fleet_member_writes_total",
			Help: "Writes of this host's fleet member record in the lease engine (the first, then a renewal every 30s), by result: ok, error (engine down or slow: retried at the next renewal; serving goes on).",
		}, []string{"result"}),
	}
	for _, r := range []string{memberOK, memberError} {
		m.memberWrites.WithLabelValues(r)
	}
	for _, r := range []string{leaseTaken, leaseHeld, leaseLost, leaseExpired, leaseError} {
		m.leases.WithLabelValues(r)
	}
	// Every series exists from the start, so that dashboards and alerts
	// see zeros rather than nothing.
	for _, r := range []string{"unreachable", "refused", "status", "broken", "corrupt"} {
		m.peerErrors.WithLabelValues(r)
	}
	for _, r := range []string{"unsigned", "bad_signature", "stale"} {
		m.refused.WithLabelValues(r)
	}
	return m
}

// Collectors returns the collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.leases, m.peerBytes, m.peerErrors, m.served, m.refused, m.memberWrites}
}
