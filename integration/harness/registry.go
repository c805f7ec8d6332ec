package harness

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RegistryOptions configures a Debian docker-registry (distribution 2.8).
type RegistryOptions struct {
	// Username and Password, when set, protect the registry with htpasswd
	// (HTTP Basic). Without them it is anonymous.
	Username, Password string
	// ProxyRemoteURL makes it a pull-through cache of that registry
	// (distribution's proxy.remoteurl), with optional upstream credentials.
	ProxyRemoteURL               string
	ProxyUsername, ProxyPassword string
	// ReadOnly sets storage.maintenance.readonly, which refuses pushes.
	ReadOnly bool
	// Binary is the registry program: "docker-registry" (Debian's
	// distribution 2.8, the default) or the path of another build of
	// distribution's registry with the same `serve config.yml` interface,
	// such as distribution v3's cmd/registry.
	Binary string
}

// Registry is a running Debian docker-registry on 127.0.0.1.
type Registry struct {
	// Host is host:port, as used in image references: 127.0.0.1:PORT.
	Host string
	// URL is http://Host.
	URL string
	// Dir holds the config, the storage root and the logs.
	Dir                string
	Username, Password string
	Process            *Process
}

// StartRegistry starts Debian's docker-registry serving on a free port of
// 127.0.0.1, its storage in a private temp dir, and waits until /v2/
// answers. Its access log (one combined-log-format line per request) is the
// process's stdout; see Requests and BlobGets.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = "docker-registry"
	}
	RequireCommands(t, bin)
	if opts.Username != "" {
		RequireCommands(t, "htpasswd")
	}
	dir := t.TempDir()
	r := &Registry{Dir: dir, Username: opts.Username, Password: opts.Password}
	if opts.Username != "" {
		if _, err := Run(context.Background(), nil, "htpasswd", "-Bbc", filepath.Join(dir, "htpasswd"), opts.Username, opts.Password); err != nil {
			t.Fatalf("harness: htpasswd: %v", err)
		}
	}
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		r.URL = "http://" + r.Host
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(registryConfig(dir, r.Host, opts)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfg)
		// distribution v3 exports OpenTelemetry traces to localhost by default.
		cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
		r.Process = StartProcess(t, fmt.Sprintf("%s-%d", filepath.Base(bin), port), dir, cmd)
		if err := waitHTTP(r.Process, r.URL+"/v2/", 20*time.Second); err != nil {
			_, stderr := r.Process.Output()
			if attempt < 3 && strings.Contains(stderr, "address already in use") {
				continue
			}
			r.Process.LogTail(t, 30)
			t.Fatalf("harness: docker-registry did not start: %v", err)
		}
		return r
	}
}

func registryConfig(dir, addr string, o RegistryOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
`, filepath.Join(dir, "storage"))
	if o.ReadOnly {
		b.WriteString("  maintenance:\n    readonly:\n      enabled: true\n")
	}
	fmt.Fprintf(&b, `http:
  addr: %q
  headers:
    X-Content-Type-Options: [nosniff]
`, addr)
	if o.Username != "" {
		fmt.Fprintf(&b, `auth:
  htpasswd:
    realm: tollgate-test
    path: %q
`, filepath.Join(dir, "htpasswd"))
	}
	if o.ProxyRemoteURL != "" {
		fmt.Fprintf(&b, "proxy:\n  remoteurl: %q\n", o.ProxyRemoteURL)
		if o.ProxyUsername != "" {
			fmt.Fprintf(&b, "  username: %q\n  password: %q\n", o.ProxyUsername, o.ProxyPassword)
		}
	}
	return b.String()
}

// waitHTTP polls url until it answers with a status below 500 (401 counts:
// the server is up), the process exits, or timeout passes.
func waitHTTP(p *Process, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v", p.Name, p.Err())
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

// Request is one line of a registry's access log.
type Request struct {
	Method string
	Path   string // without the query
	Status int
}

var accessLine = regexp.MustCompile(`"([A-Z]+) ([^ "?]+)(?:\?[^ "]*)? HTTP/[0-9.]+" (\d{3}) `)

// Requests returns the requests the registry has logged so far, in order.
// distribution writes a request's line when the response is complete.
func (r *Registry) Requests() []Request {
	f, err := os.Open(r.Process.Stdout)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		status, _ := strconv.Atoi(m[3])
		out = append(out, Request{Method: m[1], Path: m[2], Status: status})
	}
	return out
}

// BlobGets counts successful GET requests for the blob with this digest,
// in any repository: how many times the blob's bytes left the registry.
func (r *Registry) BlobGets(digest string) int {
	n := 0
	for _, q := range r.Requests() {
		if q.Method == http.MethodGet && strings.HasSuffix(q.Path, "/blobs/"+digest) && q.Status < 300 {
			n++
		}
	}
	return n
}

// RequestCount counts logged requests whose path starts with /v2/ and is not
// the bare /v2/ ping; a registry that was never contacted for content has 0.
func (r *Registry) RequestCount() int {
	n := 0
	for _, q := range r.Requests() {
		if strings.HasPrefix(q.Path, "/v2/") && q.Path != "/v2/" {
			n++
		}
	}
	return n
}

// Stop stops the registry (to simulate an upstream outage).
func (r *Registry) Stop() { r.Process.Stop() }

// HasBlob reports whether the registry's filesystem storage holds the blob
// (for a pull-through cache: whether it finished storing it).
func (r *Registry) HasBlob(digest string) bool {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok || len(hex) < 2 {
		return false
	}
	_, err := os.Stat(filepath.Join(r.Dir, "storage", "docker", "registry", "v2", "blobs", algo, hex[:2], hex, "data"))
	return err == nil
}
