package dockerconfig

import (
	"net"
	"net/url"
	"strings"
	"unicode"
)

// dockerHubKey is the key docker itself writes for Docker Hub logins.
const dockerHubKey = "https://index.docker.io/v1/"

// dockerHubHosts are the names under which Docker Hub is known; they all
// denote one registry.
var dockerHubHosts = map[string]bool{
	"docker.io":            true,
	"index.docker.io":      true,
	"registry-1.docker.io": true,
}

// NormalizeKey reduces an auths/credHelpers key or a server URL to the
// registry it names, so that keys written in different styles match the way
// docker matches them: the scheme and any path are dropped
// ("https://reg.example.com/v2/" -> "reg.example.com"), the host is
// lower-cased, a trailing dot and the default https port 443 are dropped, and
// every Docker Hub alias (https://index.docker.io/v1/, index.docker.io,
// registry-1.docker.io) becomes "docker.io". Other ports are kept: two
// registries on one host but different ports are different registries.
func NormalizeKey(key string) string {
	// One pass settles every real key; junk (stray brackets, dots, spaces)
	// can need a few more, so stored keys always re-normalise to themselves.
	n := normalizeOnce(key)
	for i := 0; i <= len(key); i++ {
		next := normalizeOnce(n)
		if next == n {
			break
		}
		n = next
	}
	return n
}

func normalizeOnce(key string) string {
	s := strings.TrimSpace(key)
	if i := strings.Index(s, "://"); i >= 0 {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			s = u.Host
		} else {
			s = s[i+3:]
		}
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndex(s, "@"); i >= 0 { // user info never names a registry
		s = s[i+1:]
	}
	s = strings.ToLower(strings.TrimSpace(s))
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	host = strings.TrimRight(strings.TrimLeft(host, "["), "]")
	host = strings.TrimRightFunc(strings.TrimSpace(host), func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
	if port == "443" {
		port = ""
	}
	if dockerHubHosts[host] && port == "" {
		return "docker.io"
	}
	if port == "" {
		if strings.Contains(host, ":") { // bare IPv6 address
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}

// storeKey is the auths key under which a new login for serverURL is
// written: docker's own key for Docker Hub, the normalised host otherwise
// (what docker login writes for every other registry).
func storeKey(serverURL string) string {
	n := NormalizeKey(serverURL)
	if n == "docker.io" {
		return dockerHubKey
	}
	return n
}
