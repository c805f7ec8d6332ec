package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	gocache "github.com/patrickmn/go-cache"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacelift-io/tollgate/proxy/cache"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// Defaults of Options.
const (
	// DefaultLeaseTTL is how long a lease lives unless renewed: how long a
	// host that died mid-fill can keep others from taking the fill over.
	// The holder renews it every third of it.
	DefaultLeaseTTL = 30 * time.Second
	// DefaultLeaseTimeout bounds each call to the lease engine: past it the
	// fill goes upstream as without a fleet, so a store that is down or
	// slow never holds a pull for long.
	DefaultLeaseTimeout = 1500 * time.Millisecond
	// badPeerMemory is how long a digest whose peer copy did not verify
	// is filled from upstream without asking the fleet.
	badPeerMemory = 10 * time.Minute
)

// Options configure a Node.
type Options struct {
	// Advertise is the URL other members dial to reach this host's peer
	// listener (http://10.0.0.5:5001); it names this host in the leases it
	// holds. Required.
	Advertise string
	// Secret is the fleet's shared secret. Required.
	Secret Secret
	// Mode is the proxy's mode (private or public). It is signed into
	// every peer request and names the lease namespace, so hosts of the two
	// modes are different fleets. Required.
	Mode string
	// Leases is where fill leases are held (lease.Open). Required.
	Leases lease.Store
	// LeaseTTL: default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// LeaseTimeout: default DefaultLeaseTimeout.
	LeaseTimeout time.Duration
	// MemberTTL is the lifetime of this host's member record while Serve
	// runs, renewed every third of it: default DefaultMemberTTL.
	MemberTTL time.Duration
	// Logger: default slog.Default().
	Logger *slog.Logger
	// Transport under peer requests; nil uses one with short dial timeouts.
	Transport *http.Transport
}

// Node is one host's membership in a fleet: it decides, for the local
// cache, who fills a blob (cache.Fleet), and serves this host's blobs to the
// other members on the peer listener (Serve).
type Node struct {
	opts    Options
	log     *slog.Logger
	sign    signer
	client  *client
	metrics *Metrics
	// badPeers holds digests whose peer copy failed verification: they
	// are filled from upstream for a while.
	badPeers *gocache.Cache
}

var _ cache.Fleet = (*Node)(nil)

// Namespace is the lease namespace of a fleet in mode: public-mode and
// private-mode hosts never share a lease, even on one engine.
func Namespace(mode string) string { return "tollgate-fleet/" + mode }

// New checks opts and builds a Node.
func New(opts Options) (*Node, error) {
	if opts.Leases == nil {
		return nil, errors.New("fleet: no lease store")
	}
	if len(opts.Secret.key) == 0 {
		return nil, errors.New("fleet: no secret (proxy.fleet.secret_file)")
	}
	if opts.Mode == "" {
		return nil, errors.New("fleet: no mode")
	}
	u, err := url.Parse(opts.Advertise)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("fleet: advertise %q is not a URL like http://10.0.0.5:5001", opts.Advertise)
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LeaseTimeout <= 0 {
		opts.LeaseTimeout = DefaultLeaseTimeout
	}
	if opts.MemberTTL <= 0 {
		opts.MemberTTL = DefaultMemberTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := newMetrics()
	sign := signer{secret: opts.Secret, mode: opts.Mode, now: time.Now}
	return &Node{
		opts:     opts,
		log:      opts.Logger.With("component", "fleet"),
		sign:     sign,
		client:   newClient(sign, m, opts.Transport),
		metrics:  m,
		badPeers: gocache.New(badPeerMemory, time.Minute),
	}, nil
}

// Collectors are the fleet's metrics, for the proxy's registry.
func (n *Node) Collectors() []prometheus.Collector { return n.metrics.Collectors() }

// Claim implements cache.Fleet: it asks the lease engine (bounded by
// LeaseTimeout) who fills d.
//
//   - The lease is ours: the fill goes upstream; the lease is renewed while
//     it runs and released by Done (after the shared-tier upload).
//   - Another host holds it: Peer streams d from that host.
//   - The engine failed or was slow, or the holder's copy of d failed
//     verification lately: an empty claim, the fill goes upstream.
func (n *Node) Claim(ctx context.Context, host, repo string, d digest.Digest) cache.FleetClaim {
	if _, bad := n.badPeers.Get(d.String()); bad {
		return cache.FleetClaim{}
	}
	actx, cancel := context.WithTimeout(ctx, n.opts.LeaseTimeout)
	l, err := n.opts.Leases.Acquire(actx, d.String(), n.opts.Advertise, n.opts.LeaseTTL)
	cancel()
	switch {
	case err == nil:
		n.metrics.leases.WithLabelValues(leaseTaken).Inc()
		n.log.Debug("fleet: lease taken, filling from upstream", "digest", d)
		h := n.hold(l)
		return cache.FleetClaim{Done: h.done}
	case errors.Is(err, lease.ErrHeld) && l.Holder == n.opts.Advertise:
		// Our own lease from before a restart: nobody is filling it.
		n.metrics.leases.WithLabelValues(leaseHeld).Inc()
		n.log.Debug("fleet: lease held by this host's previous run, filling from upstream", "digest", d)
		return cache.FleetClaim{}
	case errors.Is(err, lease.ErrHeld):
		n.metrics.leases.WithLabelValues(leaseHeld).Inc()
		holder := l.Holder
		n.log.Debug("fleet: lease held, streaming from the holder", "digest", d, "holder", holder)
		return cache.FleetClaim{
			Peer: func(ctx context.Context) (io.ReadCloser, int64, error) {
				return n.client.open(ctx, holder, host, repo, d)
			},
			Done: func(err error) {
				if errors.Is(err, cache.ErrDigestMismatch) || errors.Is(err, cache.ErrSizeMismatch) {
					n.metrics.peerErrors.WithLabelValues("corrupt").Inc()
					n.badPeers.SetDefault(d.String(), holder)
					n.log.Warn("fleet: a peer's copy did not verify; nothing was kept, the next fill goes upstream", "digest", d, "holder", holder, "error", err)
				}
			},
		}
	default:
		n.metrics.leases.WithLabelValues(leaseError).Inc()
		n.log.Warn("fleet: lease engine unavailable, filling from upstream", "digest", d, "error", err)
		return cache.FleetClaim{}
	}
}

// held is a lease of ours, renewed until done.
type held struct {
	n    *Node
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu    sync.Mutex
	l     lease.Lease
	ended bool // lost or expired: not ours any more
}

func (n *Node) hold(l lease.Lease) *held {
	h := &held{n: n, l: l, stop: make(chan struct{})}
	h.wg.Add(1)
	go h.renew()
	return h
}

func (h *held) renew() {
	defer h.wg.Done()
	n := h.n
	t := time.NewTicker(n.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		l := h.l
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), n.opts.LeaseTimeout)
		nl, err := n.opts.Leases.Renew(ctx, l, n.opts.LeaseTTL)
		cancel()
		switch {
		case err == nil:
			h.mu.Lock()
			h.l = nl
			h.mu.Unlock()
		case errors.Is(err, lease.ErrLost):
			h.end(leaseLost, err)
			return
		case time.Now().After(l.Expires):
			h.end(leaseExpired, err)
			return
		default:
			n.log.Warn("fleet: renewing a lease failed; retrying", "digest", l.Key, "error", err)
		}
	}
}

func (h *held) end(result string, err error) {
	h.mu.Lock()
	h.ended = true
	h.mu.Unlock()
	h.n.metrics.leases.WithLabelValues(result).Inc()
	h.n.log.Warn("fleet: lease no longer ours; the fill goes on, another host may fill the blob too", "digest", h.l.Key, "result", result, "error", err)
}

// done stops renewing and releases the lease, so that the next host to
// look finds the blob in the shared tier (or takes the fill over if this
// one failed).
func (h *held) done(error) { h.once.Do(h.release) }

func (h *held) release() {
	close(h.stop)
	h.wg.Wait()
	h.mu.Lock()
	l, ended := h.l, h.ended
	h.mu.Unlock()
	if ended {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.n.opts.LeaseTimeout)
	defer cancel()
	if err := h.n.opts.Leases.Release(ctx, l); errors.Is(err, lease.ErrLost) {
		h.n.metrics.leases.WithLabelValues(leaseLost).Inc()
	} else if err != nil {
		// It expires on its own.
		h.n.log.Warn("fleet: releasing a lease failed; it expires on its own", "digest", l.Key, "error", err)
	}
}

// Ping checks that the peer at base (its advertised URL) is reachable and
// accepts this host's signature.
func (n *Node) Ping(ctx context.Context, base string) error { return n.client.ping(ctx, base) }

// Ping checks, without a Node (for `tollgate doctor`), that the peer
// listener at base (http://10.0.0.5:5001) is reachable and accepts requests
// signed with secret for mode: nil, or an error wrapping ErrPeer that says
// whether it could not be reached (the dial's error, e.g.
// syscall.ECONNREFUSED, or ctx's deadline) or refused the signature
// (ErrRefused).
func Ping(ctx context.Context, secret Secret, mode, base string) error {
	sign := signer{secret: secret, mode: mode, now: time.Now}
	tr := &http.Transport{
		DialContext:       (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		DisableKeepAlives: true, // one request: leave no idle connection behind
	}
	defer tr.CloseIdleConnections()
	return newClient(sign, newMetrics(), tr).ping(ctx, base)
}

// Serve answers the peer protocol on ln with blobs from the local cache
// until ctx ends. ln must be the fleet's own listener (proxy.fleet.listen),
// never the proxy's client listener. While it serves, the node keeps its
// member record in the lease engine (MemberPrefix), released when Serve
// returns; a failing engine is logged and retried, never stops serving.
func (n *Node) Serve(ctx context.Context, ln net.Listener, blobs Blobs) error {
	mctx, stopMember := context.WithCancel(ctx)
	memberDone := make(chan struct{})
	go func() {
		defer close(memberDone)
		n.keepMember(mctx)
	}()
	defer func() {
		stopMember()
		<-memberDone
	}()
	h := &peerHandler{blobs: blobs, sign: n.sign, log: n.log, metrics: n.metrics}
	hs := newPeerServer(h, n.log, context.WithoutCancel(ctx))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
