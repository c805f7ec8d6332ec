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
