package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	ggcrname "github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"

	"github.com/spacelift-io/tollgate/allowlist/name"
	"github.com/spacelift-io/tollgate/config"
)

// transportTTL is how long an authenticated transport (and the registry token
// it holds) is reused for one (host, repository, login). ggcr refreshes an
// expired token by itself on the next 401, so this only bounds memory.
const transportTTL = 10 * time.Minute

// Endpoint says where and how an upstream registry is reached.
type Endpoint struct {
	// URL is the base URL: scheme and host[:port], no path.
	URL *url.URL
	// RootCAs, when set, replaces the system trust store for this upstream.
	RootCAs *x509.CertPool
}

// upstreams hands out authenticated HTTP clients per upstream repository.
type upstreams struct {
	endpoints  map[string]Endpoint // canonical host -> override
	configured map[string]bool     // host:port of configured endpoints
	base       *http.Transport
	creds      *credentialStore
	transports *gocache.Cache
	flight     singleflight.Group
	log        *slog.Logger
	metrics    *metrics
}

func newUpstreams(endpoints map[string]Endpoint, base *http.Transport, creds *credentialStore, log *slog.Logger, m *metrics) *upstreams {
	configured := map[string]bool{}
	for _, e := range endpoints {
		configured[hostPort(e.URL)] = true
	}
	if base == nil {
		base = defaultBaseTransport()
	}
	return &upstreams{
		endpoints:  endpoints,
		configured: configured,
		base:       base,
		creds:      creds,
		transports: gocache.New(transportTTL, time.Minute),
		log:        log,
		metrics:    m,
	}
}

// defaultBaseTransport is the HTTP transport under every upstream: system
// trust store, proxy from the environment, bounded waits for connection and
// response headers (bodies may stream for as long as they take).
func defaultBaseTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   15 * time.Second,
			KeepAlive: 30 * time.Second,
			Control:   refuseMetadataAddress,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// errMetadataAddress refuses a connection to a link-local address.
var errMetadataAddress = errors.New("refusing to connect to a link-local address (instance metadata is there, never a registry)")

// imdsIPv6 is EC2's instance metadata service on IPv6 (a unique local
// address, not link-local).
var imdsIPv6 = netip.MustParseAddr("fd00:ec2::254")

// refuseMetadataAddress is the dialer's last word on where upstream traffic
// goes: whatever name a registry, a token realm or a redirect used, never
// to a link-local address, where the cloud's instance metadata (and its
// credentials) lives.
func refuseMetadataAddress(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	a = a.Unmap()
	if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.WithZone("") == imdsIPv6 {
		return fmt.Errorf("%w: %s", errMetadataAddress, address)
	}
	return nil
}

// hostPort is u's host with its port made explicit, lower case.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return strings.ToLower(net.JoinHostPort(strings.TrimSuffix(u.Hostname(), "."), port))
}

// endpoint returns where host is reached.
func (u *upstreams) endpoint(host string) Endpoint {
	if e, ok := u.endpoints[host]; ok {
		return e
	}
	return Endpoint{URL: defaultEndpointURL(host)}
}

// dockerHubEndpoint is where Docker Hub's registry API answers: docker.io
// itself only redirects.
const dockerHubEndpoint = "registry-1.docker.io"

// defaultEndpointURL is where a canonical registry host is reached when
// the config does not say: over https, on the host itself, Docker Hub on
// its API host.
func defaultEndpointURL(host string) *url.URL {
	if host == dockerHub {
		host = dockerHubEndpoint
	}
	return &url.URL{Scheme: "https", Host: host}
}

// repoClient talks to one upstream repository with the right credentials.
type repoClient struct {
	key     string // repository and login fingerprint
	name    name.Repository
	base    *url.URL
	client  *http.Client
	metrics *metrics
	// forget drops this client and the cached login, so that the next
	// request looks the credentials up and shakes hands again.
	forget func()
}

// client returns an authenticated client for repository n, reusing one
// made earlier for the same login so registry tokens are reused until they
// expire. Concurrent first requests share one handshake.
func (u *upstreams) client(ctx context.Context, n name.Repository) (*repoClient, error) {
	l, err := u.creds.lookup(ctx, n.Host)
	if err != nil {
		return nil, err
	}
	key := n.Host + "\x00" + n.Path + "\x00" + l.fingerprint()
	if v, ok := u.transports.Get(key); ok {
		return v.(*repoClient), nil
	}
	ch := u.flight.DoChan(key, func() (any, error) {
		if v, ok := u.transports.Get(key); ok {
			return v, nil
		}
		// Shared by every request waiting on it: no single client's hangup
		// may cancel it.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handshakeTimeout)
		defer cancel()
		c, err := u.handshake(hctx, n, l)
		if err != nil {
			return nil, err
		}
		c.key = key
		c.forget = func() {
			u.transports.Delete(key)
			u.creds.cache.Delete(n.Host)
		}
		u.transports.SetDefault(key, c)
		return c, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*repoClient), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handshakeTimeout bounds a shared ping and token exchange.
const handshakeTimeout = time.Minute

// handshake pings the upstream and, for a Bearer challenge, fetches a token
// scoped to pull repository n. go-containerregistry names the endpoint it
// dials, not the repository: n stays what routing made.
func (u *upstreams) handshake(ctx context.Context, n name.Repository, l login) (*repoClient, error) {
	host := n.Host
	ep := u.endpoint(host)
	opts := []ggcrname.Option{ggcrname.WeakValidation}
	if ep.URL.Scheme == "http" {
		opts = append(opts, ggcrname.Insecure)
	}
	reg, err := ggcrname.NewRegistry(ep.URL.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream endpoint %s for %s: %w", ep.URL, host, err)
	}
	base := u.base
	if ep.RootCAs != nil {
		base = base.Clone()
		base.TLSClientConfig = &tls.Config{RootCAs: ep.RootCAs, MinVersion: tls.VersionTLS12}
	}
	guard := &realmGuard{
		inner:          base,
		registryHost:   ep.URL.Host,
		registryScheme: ep.URL.Scheme,
		registryName:   strings.ToLower(ep.URL.Hostname()),
		configured:     u.configured,
		upstream:       host,
		log:            u.log,
		metrics:        u.metrics,
	}
	scopes := []string{reg.Repo(n.Path).Scope(transport.PullScope)}
	start := time.Now()
	rt, err := transport.NewWithContext(ctx, reg, l.authenticator(), guard, scopes)
	u.metrics.upstreamLatency.WithLabelValues(u.metrics.host(host), "auth").Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, handshakeError(host, err)
	}
	return &repoClient{
		name:    n,
		base:    ep.URL,
		client:  &http.Client{Transport: rt},
		metrics: u.metrics,
	}, nil
}

// handshakeError classifies a failed ping or token exchange: an HTTP answer
// becomes an upstreamError (so 401 and 5xx are told apart), anything else is
// unreachable.
func handshakeError(host string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		ue := &upstreamError{Host: host, Status: te.StatusCode}
		for _, d := range te.Errors {
			ue.Errors = append(ue.Errors, upstreamDiagnostic(d))
		}
		return ue
	}
	return &unreachableError{Host: host, Err: err}
}

// unreachableError: the upstream could not be asked at all.
type unreachableError struct {
	Host string
	Err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("upstream %s unreachable: %v", e.Host, e.Err)
}

func (e *unreachableError) Unwrap() error { return e.Err }

// request sends one request for rt to its upstream repository. The caller
// closes the response body.
func (u *upstreams) request(ctx context.Context, method string, rt *route, query url.Values, header http.Header) (*http.Response, error) {
	c, err := u.client(ctx, rt.name)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, method, rt, query, header)
}

// do sends one request to the upstream repository. The caller closes the
// response body.
func (c *repoClient) do(ctx context.Context, method string, r *route, query url.Values, header http.Header) (*http.Response, error) {
	u := *c.base
	u.Path = r.upstreamPath()
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	start := time.Now()
	resp, err := c.client.Do(req)
	c.metrics.upstreamLatency.WithLabelValues(c.metrics.host(c.name.Host), r.kind.String()).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var te *transport.Error
		if errors.As(err, &te) {
			return nil, handshakeError(c.name.Host, err)
		}
		return nil, &unreachableError{Host: c.name.Host, Err: withoutQuery(err)}
	}
	if resp.StatusCode == http.StatusUnauthorized && c.forget != nil {
		// Still refused after ggcr's own token refresh: the login may have
		// changed or been revoked. Start afresh on the next request.
		c.forget()
	}
	return resp, nil
}

// withoutQuery drops the query from the URL that an http.Client error
// names: after a redirect it is blob storage's presigned URL, whose
// signature and session token (S3's X-Amz-Signature and
// X-Amz-Security-Token, a CDN's "verify") must not reach logs or clients.
func withoutQuery(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return &url.Error{Op: ue.Op, URL: "(unparsable URL)", Err: ue.Err}
	}
	if u.RawQuery == "" && u.Fragment == "" && u.User == nil {
		return err
	}
	redacted := *u
	redacted.User = nil
	redacted.RawQuery, redacted.Fragment, redacted.RawFragment = "", "", ""
	s := redacted.String()
	if u.RawQuery != "" {
		s += "?(query redacted)"
	}
	return &url.Error{Op: ue.Op, URL: s, Err: ue.Err}
}

// loadRootCAs reads a PEM bundle for an upstream's ca_file.
func loadRootCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates found", file)
	}
	return pool, nil
}

// EndpointsFromConfig turns the upstreams section of the config into
// endpoint overrides.
func EndpointsFromConfig(ups map[string]config.Upstream) (map[string]Endpoint, error) {
	out := make(map[string]Endpoint, len(ups))
	for host, up := range ups {
		if up.Endpoint == "" && up.CAFile == "" {
			continue
		}
		var ep Endpoint
		if up.Endpoint != "" {
			u, err := url.Parse(up.Endpoint)
			if err != nil {
				return nil, fmt.Errorf("upstreams.%s.endpoint: %w", host, err)
			}
			ep.URL = &url.URL{Scheme: u.Scheme, Host: u.Host}
		} else {
			ep.URL = defaultEndpointURL(host)
		}
		if up.CAFile != "" {
			pool, err := loadRootCAs(up.CAFile)
			if err != nil {
				return nil, fmt.Errorf("upstreams.%s.ca_file: %w", host, err)
			}
			ep.RootCAs = pool
		}
		out[strings.ToLower(host)] = ep
	}
	return out, nil
}
