package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/spacelift-io/tollgate/allowlist/pattern"
)

// validateProxy checks the proxy's listen address and the upstreams
// overrides: keys are canonical registry hosts, endpoints are http(s) base
// URLs without path, and plain http is accepted only for loopback, so that
// credentials never cross a network in clear text.
func (c *Config) validateProxy() []FieldError {
	var fes []FieldError
	if _, port, err := net.SplitHostPort(c.Proxy.Listen); err != nil || port == "" {
		fes = append(fes, fieldErr(fmt.Sprintf("listen address %q is not host:port (e.g. 127.0.0.1:5000, or :5000 for every interface)", c.Proxy.Listen), "proxy", "listen"))
	}
	for host, up := range c.Upstreams {
		canon, err := pattern.CanonicalHost(host)
		if err != nil {
			fes = append(fes, fieldErr(fmt.Sprintf("upstream key %q is not a registry host: %v", host, err), "upstreams", host))
			continue
		}
		if canon != host {
			fes = append(fes, fieldErr(fmt.Sprintf("upstream key %q: write it as the canonical host %q", host, canon), "upstreams", host))
		}
		if up.Endpoint != "" {
			if msg := checkEndpoint(up.Endpoint); msg != "" {
				fes = append(fes, fieldErr(msg, "upstreams", host, "endpoint"))
			}
		}
	}
	return fes
}

// checkEndpoint returns what is wrong with an upstream endpoint URL, or "".
func checkEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Sprintf("endpoint %q is not a URL like https://registry.example.com or http://127.0.0.1:5003", redactUserinfo(s))
	}
	if u.User != nil {
		return fmt.Sprintf("endpoint %q must not carry credentials; tollgate looks logins up itself", redactURL(u))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("endpoint %q must be a scheme and host only (no path, query or fragment)", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Sprintf("endpoint %q uses plain http on a non-loopback host; use https (plain http is accepted for 127.0.0.0/8, ::1 and localhost only)", s)
		}
	default:
		return fmt.Sprintf("endpoint %q: scheme must be https (or http for loopback)", s)
	}
	return ""
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// redactUserinfo hides what may be a login in an endpoint that did not
// parse as a URL: everything before the last '@' of the part that would be
// the authority.
func redactUserinfo(s string) string {
	rest, scheme := s, ""
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		if at := strings.LastIndex(rest[:j], "@"); at >= 0 {
			return scheme + "REDACTED@" + rest[at+1:]
		}
		return s
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "REDACTED@" + rest[at+1:]
	}
	return s
}
