package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// errUntrustedRealm refuses a request that would carry credentials to a
// host that is not the registry's own.
var errUntrustedRealm = errors.New("refusing to send credentials to an untrusted token realm")

// errLocalRedirect refuses to follow an upstream's redirect to this host or
// its link-local neighbours.
var errLocalRedirect = errors.New("refusing to follow an upstream redirect to a loopback or link-local address")

// realmGuard sits under go-containerregistry's auth transport and sees every
// request it makes: the registry API calls, the token exchange at the Bearer
// realm, and redirects to blob storage. ggcr sends the registry's Basic
// credentials to whatever realm the registry's challenge names (and refuses
// only private IP literals); the guard makes sure credentials reach only:
//
//   - the registry endpoint itself (same scheme: a redirect from https to
//     http on the registry's host would put the login on the wire in
//     clear),
//   - an upstream endpoint the operator configured (same host and port), or
//   - an https URL whose host is a DNS name (not an IP literal, not
//     localhost) in the same registrable domain as the registry, e.g.
//     auth.docker.io for registry-1.docker.io, gitlab.com for
//     registry.gitlab.com (on multi-tenant registry domains such as
//     azurecr.io or pkg.dev, the same host only).
//
// A redirect (from the registry or anything it sent the request on to) to
// a loopback or link-local address, other than a configured endpoint, is not
// followed at all: such an address is this host's own services or the
// cloud's instance metadata, never a registry's storage, and by tag a
// manifest verifies against whatever bytes come back.
//
// Anything else goes out without an Authorization header (the token service
// then hands out an anonymous token, or refuses), and a request with a body
// (ggcr's OAuth POST carries the refresh token in it) is not sent at all.
type realmGuard struct {
	inner        http.RoundTripper
	registryHost string // endpoint host[:port] as it appears in URLs
	// registryScheme is the endpoint's scheme; "" means https.
	registryScheme string
	registryName   string // endpoint hostname, lower case
	configured     map[string]bool
	upstream       string // canonical upstream host, for logs and metrics
	log            *slog.Logger
	metrics        *metrics
}

var _ http.RoundTripper = (*realmGuard)(nil)

func (g *realmGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	isToken := isTokenRequest(req)
	if isToken && g.metrics != nil {
		g.metrics.tokenRequests.WithLabelValues(g.metrics.host(g.upstream)).Inc()
	}
	if req.Response != nil && !g.endpoint(req.URL) && isLocalTarget(req.URL.Hostname()) {
		g.log.Warn("refused to follow an upstream redirect to a local address",
			"upstream", g.upstream, "target_host", req.URL.Host)
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w (%s, from registry %s)", errLocalRedirect, req.URL.Host, g.upstream)
	}
	if g.trusted(req.URL) {
		return g.inner.RoundTrip(req)
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		g.log.Warn("refused to send a token request with credentials to an untrusted realm",
			"upstream", g.upstream, "realm_host", req.URL.Host, "method", req.Method)
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w %s://%s (registry %s)", errUntrustedRealm, req.URL.Scheme, req.URL.Host, g.upstream)
	}
	if req.Header.Get("Authorization") != "" {
		g.log.Warn("stripped credentials from a request to an untrusted host; it gets an anonymous request",
			"upstream", g.upstream, "target_host", req.URL.Host, "token_request", isToken)
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
	}
	return g.inner.RoundTrip(req)
}

// endpoint reports whether u is the registry endpoint or an upstream
// endpoint the operator configured.
func (g *realmGuard) endpoint(u *url.URL) bool {
	scheme := g.registryScheme
	if scheme == "" {
		scheme = "https"
	}
	if strings.EqualFold(u.Host, g.registryHost) && strings.EqualFold(u.Scheme, scheme) {
		return true
	}
	return g.configured[hostPort(u)]
}

// trusted reports whether credentials may travel to u.
func (g *realmGuard) trusted(u *url.URL) bool {
	if g.endpoint(u) {
		return true
	}
	name := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if u.Scheme != "https" || isIPOrLocal(name) || isIPOrLocal(g.registryName) {
		return false
	}
	want, err := registrableDomain(g.registryName)
	if err != nil {
		return false
	}
	got, err := registrableDomain(name)
	if err != nil {
		return false
	}
	return got == want
}

// multiTenant are registry domains where every customer has a name of its
// own but that the public suffix list does not list as suffixes: each host
// under them is its own domain, so mine.azurecr.io never trusts
// theirs.azurecr.io with its login.
var multiTenant = []string{
	"azurecr.io", "azurecr.cn", "azurecr.us", "pkg.dev", "amazonaws.com",
	"amazonaws.com.cn", "amazonaws.eu", "on.aws",
}

// registrableDomain is the domain a host's owner controls.
func registrableDomain(host string) (string, error) {
	for _, s := range multiTenant {
		if strings.HasSuffix(host, "."+s) {
			return host, nil
		}
	}
	return publicsuffix.EffectiveTLDPlusOne(host)
}

// isIPOrLocal reports whether name is an IP literal or a loopback name.
func isIPOrLocal(name string) bool {
	name = strings.Trim(name, "[]")
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

// isLocalTarget reports whether host names this machine or its link-local
// network: localhost names, loopback, link-local and unspecified addresses.
func isLocalTarget(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified()
}

// isTokenRequest recognises ggcr's token exchanges: a GET with service or
// scope parameters, or the OAuth POST.
func isTokenRequest(req *http.Request) bool {
	if req.Method == http.MethodPost {
		return true
	}
	q := req.URL.Query()
	return q.Has("service") || q.Has("scope")
}
