package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Label values that clients choose (the method, the registry host of a
// denied request) must not grow /metrics without bound: every new value is a
// new time series held in memory for the life of the process.
func TestMetricLabelsAreBounded(t *testing.T) {
	p := startProxy(t, proxyOpts{noCache: true, allow: []string{testHost}})
	const n = 3 * maxHostLabels
	for i := 0; i < n; i++ {
		p.do(t, http.MethodGet, fmt.Sprintf("/v2/h%d.denied.test/app/manifests/v1", i), nil)
		p.do(t, fmt.Sprintf("M%d", i), "/v2/", nil)
	}
	_, body := p.do(t, http.MethodGet, "/metrics", nil)
	denials, methods := 0, map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "tollgate_proxy_denials_total{") {
			denials++
		}
		if rest, ok := strings.CutPrefix(line, "tollgate_proxy_requests_total{"); ok {
			_, m, _ := strings.Cut(rest, `method="`)
			m, _, _ = strings.Cut(m, `"`)
			methods[m] = true
		}
	}
	if denials == 0 || denials > maxHostLabels+1 {
		t.Errorf("%d denied hosts made %d denial series; want 1..%d", n, denials, maxHostLabels+1)
	}
	if len(methods) > 10 {
		t.Errorf("%d request methods made %d method label values: %v", n, len(methods), methods)
	}
	if !strings.Contains(string(body), `tollgate_proxy_denials_total{host="h0.denied.test"} 1`) {
		t.Errorf("the first denied hosts keep their own series:\n%s", body)
	}
}

// TestDeniedHostsDoNotStarveUpstreamLabels: clients that ask for many denied
// hosts use up the denial series' budget, not the one of the upstream
// registries the proxy really talks to, whose metrics keep their host.
func TestDeniedHostsDoNotStarveUpstreamLabels(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 256, 1), nil)
	p := startProxy(t, proxyOpts{noCache: true, allow: []string{testHost}, endpoints: map[string]string{testHost: up.URL}})
	for i := 0; i < 2*maxHostLabels; i++ {
		p.do(t, http.MethodGet, fmt.Sprintf("/v2/h%d.denied.test/app/manifests/v1", i), nil)
	}
	if resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed pull: %d %s", resp.StatusCode, body)
	}
	_, body := p.do(t, http.MethodGet, "/metrics", nil)
	if !strings.Contains(string(body), `tollgate_proxy_upstream_bytes_total{host="`+testHost+`"}`) {
		t.Errorf("upstream metrics lost their host label after many denied hosts:\n%s", grepLines(string(body), "tollgate_proxy_upstream_bytes_total"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
