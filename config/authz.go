package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/spacelift-io/tollgate/allowlist/pattern"
)

// Authz configures `tollgate authz`, the Docker engine authorization
// plugin. The allowlist and mode are the top-level ones; these keys say
// where the plugin listens, which proxy public-mode pulls go through, and
// what it does with each request form it cannot check image by image.
type Authz struct {
	// Socket is the plugin's unix socket; the daemon finds
	// /run/docker/plugins/NAME.sock as plugin NAME.
	Socket string `yaml:"socket"`
	// Proxy is the host:port of the local tollgate proxy as image
	// references name it (127.0.0.1:5000/ghcr.io/org/app). Empty: the host
	// and port of proxy.listen, with 127.0.0.1 for an unspecified host.
	Proxy string `yaml:"proxy"`
	// MetricsListen, when set, serves Prometheus metrics at /metrics on this
	// address (loopback only).
	MetricsListen string `yaml:"metrics_listen"`
	// Build, Load, Import and LocalImages are "allow" or "deny"; Login is
	// "allow", "deny" or empty (deny in public mode, allow in private).
	Build       Gate `yaml:"build"`
	Load        Gate `yaml:"load"`
	Import      Gate `yaml:"import"`
	Login       Gate `yaml:"login"`
	LocalImages Gate `yaml:"local_images"`
}

// Gate is the setting for a kind of request the plugin cannot check image
// by image: let it through or refuse it.
type Gate string

// Gate values.
const (
	GateAllow Gate = "allow"
	GateDeny  Gate = "deny"
)

// Allows reports whether g lets requests through; an unset gate is fallback.
func (g Gate) Allows(fallback bool) bool {
	switch g {
	case GateAllow:
		return true
	case GateDeny:
		return false
	}
	return fallback
}

// ProxyAddr returns the address public-mode pulls must name: Authz.Proxy,
// else proxy.listen with an unspecified host (":5000", "0.0.0.0:5000",
// "[::]:5000") read as 127.0.0.1. It is canonicalised as registry hosts are.
// A proxy.listen that names no usable address (port 0) is an error here,
// not at load time: only tollgate authz needs it.
func (c *Config) ProxyAddr() (string, error) {
	addr := c.Authz.Proxy
	if addr == "" {
		host, port, err := net.SplitHostPort(c.Proxy.Listen)
		if err != nil {
			return "", fmt.Errorf("proxy.listen %q: %w", c.Proxy.Listen, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	return pattern.CanonicalHost(addr)
}

// validateAuthz checks the authz section: an absolute socket path ending
// in .sock, a proxy address (when set) that is a registry host with a
// port, a loopback metrics address, and gates that are allow or deny.
func (c *Config) validateAuthz() []FieldError {
	var fes []FieldError
	a := c.Authz
	if !filepath.IsAbs(a.Socket) || !strings.HasSuffix(a.Socket, ".sock") {
		fes = append(fes, fieldErr(fmt.Sprintf("socket %q must be an absolute path ending in .sock (the daemon finds /run/docker/plugins/NAME.sock as plugin NAME)", a.Socket), "authz", "socket"))
	}
	if a.Proxy != "" {
		canon, err := pattern.CanonicalHost(a.Proxy)
		if err != nil {
			fes = append(fes, fieldErr(fmt.Sprintf("proxy %q is not host:port of the tollgate proxy: %v", a.Proxy, err), "authz", "proxy"))
		} else if _, _, err := net.SplitHostPort(canon); err != nil {
			fes = append(fes, fieldErr(fmt.Sprintf("proxy %q needs a port, as image references name it (e.g. 127.0.0.1:5000)", a.Proxy), "authz", "proxy"))
		}
	}
	if a.MetricsListen != "" {
		host, port, err := net.SplitHostPort(a.MetricsListen)
		if err != nil || port == "" || !isLoopbackHost(host) {
			fes = append(fes, fieldErr(fmt.Sprintf("metrics_listen %q must be a loopback host:port such as 127.0.0.1:9102", a.MetricsListen), "authz", "metrics_listen"))
		}
	}
	gates := []struct {
		key   string
		g     Gate
		unset bool
	}{
		{"build", a.Build, false}, {"load", a.Load, false}, {"import", a.Import, false},
		{"login", a.Login, true}, {"local_images", a.LocalImages, false},
	}
	for _, x := range gates {
		if x.g == GateAllow || x.g == GateDeny || (x.unset && x.g == "") {
			continue
		}
		fes = append(fes, fieldErr(fmt.Sprintf("%s %q is not valid: use %q or %q", x.key, string(x.g), GateAllow, GateDeny), "authz", x.key))
	}
	return fes
}

// normalize fills unset authz keys from the embedded default d.
func (a *Authz) normalize(d Authz) {
	if a.Socket == "" {
		a.Socket = d.Socket
	}
	for _, p := range []struct{ g, d *Gate }{{&a.Build, &d.Build}, {&a.Load, &d.Load}, {&a.Import, &d.Import}, {&a.LocalImages, &d.LocalImages}} {
		if *p.g == "" {
			*p.g = *p.d
		}
	}
}
