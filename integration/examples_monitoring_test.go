package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// The monitoring examples: examples/monitoring/grafana-dashboard.json and
// prometheus-alerts.yaml. They must parse, have the shape Grafana and
// Prometheus load, and name only metrics that a real proxy exports.

type grafanaDashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type promRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// monitoringExprs parses both files, checks their shape and returns every
// PromQL expression they hold, keyed by where it is.
func monitoringExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}

	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(opsExample(t, "monitoring/grafana-dashboard.json"))))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Errorf("grafana-dashboard.json: want uid, title and panels; got uid %q title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("grafana-dashboard.json: panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("grafana-dashboard.json: panel %d (%q) needs a title and at least one query", p.ID, p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("grafana-dashboard.json: panel %q query %s is empty", p.Title, q.RefID)
			}
			exprs["dashboard panel "+p.Title+" "+q.RefID] = q.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			exprs["dashboard variable "+v.Name] = v.Definition
		}
	}

	var r promRules
	if err := yaml.Unmarshal(opsExample(t, "monitoring/prometheus-alerts.yaml"), &r); err != nil {
		t.Fatalf("prometheus-alerts.yaml: %v", err)
	}
	if len(r.Groups) == 0 {
		t.Fatal("prometheus-alerts.yaml: no rule groups")
	}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			where := "alert " + rule.Alert
			if rule.Alert == "" || strings.TrimSpace(rule.Expr) == "" {
				t.Errorf("prometheus-alerts.yaml group %s: a rule without alert name or expr", g.Name)
			}
			if _, err := time.ParseDuration(rule.For); rule.For != "" && err != nil {
				t.Errorf("%s: for %q: %v", where, rule.For, err)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, rule.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical, warning or info", where, rule.Labels["severity"])
			}
			if rule.Annotations["summary"] == "" {
				t.Errorf("%s: no summary annotation", where)
			}
			exprs[where] = rule.Expr
		}
	}
	for where, e := range exprs {
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") || strings.Count(e, "[") != strings.Count(e, "]") {
			t.Errorf("%s: unbalanced brackets in %q", where, e)
		}
	}
	return exprs
}

// metricName matches the metric names the examples may use: ours, and the
// Go and process collectors' that the proxy also exports.
var metricName = regexp.MustCompile(`\b(?:tollgate|process|go)_[a-z0-9_]+\b`)

// TestExampleMonitoringFilesParse runs without a proxy: shape only.
func TestExampleMonitoringFilesParse(t *testing.T) {
	exprs := monitoringExprs(t)
	var names []string
	for _, e := range exprs {
		names = append(names, metricName.FindAllString(e, -1)...)
	}
	for _, want := range []string{"tollgate_fleet_leases_total", "tollgate_fleet_peer_bytes_total", "tollgate_fleet_peer_errors_total", "tollgate_proxy_requests_total", "tollgate_cache_fill_errors_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("the monitoring examples do not use %s", want)
		}
	}
}

// TestExampleMonitoringMetricsExist starts a real proxy, makes it pull,
// deny and serve a stale tag so that its labelled series exist, and checks
// that every metric the dashboard and the alerts name is on its /metrics.
func TestExampleMonitoringMetricsExist(t *testing.T) {
	t.Parallel()
	exprs := monitoringExprs(t)
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2})
	// A fleet member (a Redis lease engine, a shared tier), so that the
	// tollgate_fleet_* metrics are exported too.
	redis := harness.StartRedis(t)
	peer := fmt.Sprintf("127.0.0.10:%d", loopbackPort(t, "127.0.0.10"))
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
		ProxyExtra: fmt.Sprintf("  shared:\n    driver: filesystem\n    parameters:\n      rootdirectory: %q\n"+
			"  fleet:\n    listen: %q\n    secret_file: %q\n    lease: %q\n",
			filepath.Join(t.TempDir(), "shared"), peer, writeSecret(t, fleetSecret), redis.URL),
	})
	sk := harness.NewSkopeo(t)
	pullImage(ctx, t, sk, px.Host+"/"+pubHost+"/team/app:v1", img)
	if resp, _ := doRequest(t, http.MethodGet, px.URL+"/v2/evil.example/x/manifests/latest", nil); resp.StatusCode < 400 {
		t.Errorf("a pull from a registry outside the allowlist: %s", resp.Status)
	}
	// The upstream gone: the cached tag is served stale.
	up.reg.Stop()
	if resp, _ := doRequest(t, http.MethodGet, px.URL+"/v2/"+pubHost+"/team/app/manifests/v1",
		map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET the cached tag with the upstream down: %s", resp.Status)
	}

	resp, body := doRequest(t, http.MethodGet, px.URL+"/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	exported := map[string]string{} // name -> type
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = f[3]
		}
	}
	for where, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			if _, ok := exported[name]; ok {
				continue
			}
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if exported[base] == "histogram" || exported[base] == "summary" {
				continue
			}
			t.Errorf("%s names %s, which the proxy's /metrics does not export", where, name)
		}
	}
}
