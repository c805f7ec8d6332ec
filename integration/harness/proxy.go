package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// ProxyConfig is what a test sets in the config file of `tollgate proxy`.
type ProxyConfig struct {
	// Mode is private (default) or public.
	Mode string
	// Allowlist patterns; nil means the built-in default list.
	Allowlist []string
	// Upstreams maps canonical registry hosts (registry.test, docker.io) to
	// the endpoint URL they are reached at (upstreams.<host>.endpoint).
	Upstreams map[string]string
	// CacheDir is proxy.cache.dir; empty means a new private temp dir.
	// Reuse one to restart a proxy on a warm cache.
	CacheDir string
	// MaxSize is proxy.cache.maxsize (empty: the default).
	MaxSize string
	// Shared is proxy.shared: a distribution storage driver and its
	// parameters (see ObjectStore.SharedParameters); nil means none.
	Shared *SharedTier
	// Extra is raw YAML appended to the file (e.g. an ecr: section).
	Extra string
	// ProxyExtra is raw YAML added inside the proxy: section, indented by
	// the caller two spaces (e.g. "  shared: ...\n  fleet: ...\n").
	ProxyExtra string
}

// SharedTier is proxy.shared in a ProxyConfig.
type SharedTier struct {
	Driver     string
	Parameters map[string]any
}

// Proxy is a running `tollgate proxy`.
type Proxy struct {
	// Host is 127.0.0.1:PORT, the registry host clients pull from; URL is http://Host.
	Host, URL string
	// CacheDir is its cache directory; ConfigPath its config file.
	CacheDir, ConfigPath string
	Process              *Process
}

// YAML renders the config file.
func (c ProxyConfig) YAML() string {
	var b strings.Builder
	mode := c.Mode
	if mode == "" {
		mode = "private"
	}
	fmt.Fprintf(&b, "mode: %s\n", mode)
	if c.Allowlist != nil {
		b.WriteString("allowlist:\n")
		for _, p := range c.Allowlist {
			fmt.Fprintf(&b, "  - %q\n", p)
		}
	}
	fmt.Fprintf(&b, "proxy:\n  cache:\n    dir: %q\n", c.CacheDir)
	if c.MaxSize != "" {
		fmt.Fprintf(&b, "    maxsize: %s\n", c.MaxSize)
	}
	if c.Shared != nil {
		fmt.Fprintf(&b, "  shared:\n    driver: %q\n    parameters:\n", c.Shared.Driver)
		keys := make([]string, 0, len(c.Shared.Parameters))
		for k := range c.Shared.Parameters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch v := c.Shared.Parameters[k].(type) {
			case string:
				fmt.Fprintf(&b, "      %s: %q\n", k, v)
			default:
				fmt.Fprintf(&b, "      %s: %v\n", k, v)
			}
		}
	}
	if c.ProxyExtra != "" {
		b.WriteString(strings.TrimSuffix(c.ProxyExtra, "\n") + "\n")
	}
	if len(c.Upstreams) > 0 {
		b.WriteString("upstreams:\n")
		hosts := make([]string, 0, len(c.Upstreams))
		for h := range c.Upstreams {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		for _, h := range hosts {
			fmt.Fprintf(&b, "  %q:\n    endpoint: %q\n", h, c.Upstreams[h])
		}
	}
	b.WriteString("log:\n  level: debug\n")
	if c.Extra != "" {
		b.WriteString(c.Extra)
		if !strings.HasSuffix(c.Extra, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// StartProxy runs `tollgate proxy --config FILE --listen 127.0.0.1:PORT`
// from binDir (see BuildBinaries) with env added to the test's environment,
// and waits until GET /v2/ answers.
func StartProxy(t testing.TB, binDir string, cfg ProxyConfig, env ...string) *Proxy {
	t.Helper()
	dir := t.TempDir()
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(dir, "cache")
	}
	p := &Proxy{CacheDir: cfg.CacheDir, ConfigPath: filepath.Join(dir, "tollgate.yaml")}
	if err := os.WriteFile(p.ConfigPath, []byte(cfg.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		p.Host = fmt.Sprintf("127.0.0.1:%d", port)
		p.URL = "http://" + p.Host
		cmd := exec.Command(filepath.Join(binDir, "tollgate"), "proxy", "--config", p.ConfigPath, "--listen", p.Host)
		cmd.Env = append(append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache")), env...)
		p.Process = StartProcess(t, fmt.Sprintf("tollgate-proxy-%d", port), dir, cmd)
		if err := waitHTTP(p.Process, p.URL+"/v2/", 30*time.Second); err != nil {
			_, stderr := p.Process.Output()
			if attempt < 3 && strings.Contains(stderr, "address already in use") {
				continue
			}
			p.Process.LogTail(t, 30)
			t.Fatalf("harness: tollgate proxy did not start: %v\nconfig:\n%s", err, cfg.YAML())
		}
		return p
	}
}

// Stop stops the proxy with SIGTERM (graceful shutdown).
func (p *Proxy) Stop() { p.Process.Stop() }
