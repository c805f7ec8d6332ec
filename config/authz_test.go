package config

import (
	"errors"
	"strings"
	"testing"
)

func TestAuthzDefaults(t *testing.T) {
	c := Default()
	a := c.Authz
	if a.Socket != "/run/docker/plugins/tollgate.sock" {
		t.Errorf("socket %q", a.Socket)
	}
	for name, g := range map[string]Gate{"build": a.Build, "load": a.Load, "import": a.Import, "local_images": a.LocalImages} {
		if g != GateDeny {
			t.Errorf("authz.%s defaults to %q, want deny", name, g)
		}
	}
	if a.Login != "" || !a.Login.Allows(true) || a.Login.Allows(false) {
		t.Errorf("authz.login %q should be unset and follow the mode", a.Login)
	}
	if addr, err := c.ProxyAddr(); err != nil || addr != "127.0.0.1:5000" {
		t.Errorf("ProxyAddr = %q, %v", addr, err)
	}
}

func TestAuthzProxyAddr(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"proxy:\n  listen: \":5001\"\n", "127.0.0.1:5001"},
		{"proxy:\n  listen: 0.0.0.0:5002\n", "127.0.0.1:5002"},
		{"proxy:\n  listen: \"[::]:5003\"\n", "127.0.0.1:5003"},
		{"proxy:\n  listen: localhost:5004\n", "localhost:5004"},
		{"authz:\n  proxy: LocalHost:5005\n", "localhost:5005"},
	} {
		cfg, err := Parse([]byte(c.yaml), "config.yaml")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if got, err := cfg.ProxyAddr(); err != nil || got != c.want {
			t.Errorf("%q: ProxyAddr = %q, %v; want %q", c.yaml, got, err, c.want)
		}
	}
}

func TestAuthzInvalid(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"authz:\n  build: yes-please\n", `config.yaml:2: build "yes-please" is not valid: use "allow" or "deny"`},
		{"authz:\n  login: maybe\n", `config.yaml:2: login "maybe" is not valid`},
		{"authz:\n  local_images: Allow\n", `local_images "Allow" is not valid`},
		{"authz:\n  socket: tollgate.sock\n", `config.yaml:2: socket "tollgate.sock" must be an absolute path ending in .sock`},
		{"authz:\n  socket: /run/docker/plugins/tollgate\n", "must be an absolute path ending in .sock"},
		{"authz:\n  proxy: 127.0.0.1\n", `config.yaml:2: proxy "127.0.0.1" needs a port`},
		{"authz:\n  proxy: http://127.0.0.1:5000\n", `proxy "http://127.0.0.1:5000" is not host:port`},
		{"authz:\n  metrics_listen: 0.0.0.0:9102\n", `config.yaml:2: metrics_listen "0.0.0.0:9102" must be a loopback host:port`},
		{"authz:\n  buld: allow\n", `unknown key "buld" in authz (did you mean "build"?)`},
	} {
		_, err := Parse([]byte(c.yaml), "config.yaml")
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v; want one containing %q", c.yaml, err, c.want)
		}
	}
}
