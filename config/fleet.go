package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
)

// FleetLeaseShared is proxy.fleet.lease's default: the shared tier's own
// object store holds the leases (conditional writes).
const FleetLeaseShared = "shared"

// normalize fills proxy.fleet's defaults: lease "shared", advertise
// http://<listen> when listen names a host. A nil Fleet stays nil.
func (f *Fleet) normalize() {
	if f == nil {
		return
	}
	if f.Lease == "" {
		f.Lease = FleetLeaseShared
	}
	if f.Advertise == "" {
		if host, port, err := net.SplitHostPort(f.Listen); err == nil && port != "" && !unspecifiedHost(host) {
			f.Advertise = "http://" + net.JoinHostPort(host, port)
		}
	}
}

// unspecifiedHost reports a listen host that means every interface.
func unspecifiedHost(h string) bool {
	if h == "" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsUnspecified()
}

// validateFleet checks proxy.fleet: a peer listener of its own (never the
// client listener's address), an advertised http(s) URL peers can dial, a
// secret file, and a lease engine that exists. Called by validateProxy.
func (c *Config) validateFleet() []FieldError {
	f := c.Proxy.Fleet
	if f == nil {
		return nil
	}
	var fes []FieldError
	bad := func(msg string, key string) { fes = append(fes, fieldErr(msg, "proxy", "fleet", key)) }
	host, port, err := net.SplitHostPort(f.Listen)
	switch {
	case f.Listen == "":
		bad("listen is required: the peer listener's address, e.g. 10.0.0.5:5001 (a port of its own, never proxy.listen's)", "listen")
	case err != nil || port == "":
		bad(fmt.Sprintf("listen address %q is not host:port (e.g. 10.0.0.5:5001)", f.Listen), "listen")
	default:
		if sameListener(f.Listen, c.Proxy.Listen) {
			bad(fmt.Sprintf("listen %q overlaps proxy.listen %q: the peer listener must be separate from the client listener (another port)", f.Listen, c.Proxy.Listen), "listen")
		}
		if f.Advertise == "" && unspecifiedHost(host) {
			bad(fmt.Sprintf("listen %q listens on every interface, so the address peers dial cannot be derived from it: set proxy.fleet.advertise, e.g. http://10.0.0.5%s", f.Listen, ":"+port), "advertise")
		}
	}
	if f.Advertise != "" {
		u, err := url.Parse(f.Advertise)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			bad(fmt.Sprintf("advertise %q is not a URL like http://10.0.0.5:5001", f.Advertise), "advertise")
		case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			bad(fmt.Sprintf("advertise %q must be a scheme, host and port only", redactUserinfo(f.Advertise)), "advertise")
		case unspecifiedHost(u.Hostname()):
			bad(fmt.Sprintf("advertise %q names no host peers can dial: write this host's address, e.g. http://10.0.0.5:5001", f.Advertise), "advertise")
		}
	}
	switch {
	case f.SecretFile == "":
		bad("secret_file is required: a file (0600) holding the secret every member of the fleet shares, e.g. made with: head -c 32 /dev/urandom | base64 > /etc/tollgate/fleet.secret", "secret_file")
	case !filepath.IsAbs(f.SecretFile):
		bad(fmt.Sprintf("secret_file %q must be an absolute path", f.SecretFile), "secret_file")
	}
	switch {
	case f.Lease == FleetLeaseShared:
		switch d := c.sharedDriver(); d {
		case "":
			bad(`lease "shared" keeps the leases in the shared tier, and proxy.shared has no driver: configure proxy.shared (driver s3 or filesystem), or name a Redis: lease: redis://HOST:6379/0`, "lease")
		case "s3", "s3-aws", "filesystem":
		default:
			bad(fmt.Sprintf(`lease "shared" holds the leases in the shared tier, which tollgate can do on the s3 and filesystem drivers (proxy.shared.driver is %q): name a Redis, lease: redis://HOST:6379/0`, d), "lease")
		}
	case strings.HasPrefix(f.Lease, "redis://") || strings.HasPrefix(f.Lease, "rediss://"):
		if u, err := url.Parse(f.Lease); err != nil || u.Host == "" {
			bad(fmt.Sprintf("lease %q is not a URL like redis://HOST:6379/0", redactUserinfo(f.Lease)), "lease")
		}
	default:
		bad(fmt.Sprintf("lease %q: use %q (the shared tier's object store) or redis://HOST:6379/0", redactUserinfo(f.Lease), FleetLeaseShared), "lease")
	}
	return fes
}

// Overlaps reports whether the peer listener would collide with the client
// listener at clientListen (for a --listen flag that overrides
// proxy.listen after the file was checked).
func (f *Fleet) Overlaps(clientListen string) bool {
	return f != nil && sameListener(f.Listen, clientListen)
}

// sameListener reports whether two host:port listen addresses would
// collide: the same port, and the same host or one of them on every
// interface. Hosts that are names are compared as written.
func sameListener(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	if unspecifiedHost(ha) || unspecifiedHost(hb) {
		return true
	}
	aa, e1 := netip.ParseAddr(ha)
	ab, e2 := netip.ParseAddr(hb)
	if e1 == nil && e2 == nil {
		return aa.Unmap() == ab.Unmap()
	}
	return strings.EqualFold(ha, hb)
}

func (c *Config) sharedDriver() string {
	if c.Proxy.Shared == nil {
		return ""
	}
	return c.Proxy.Shared.Driver
}
