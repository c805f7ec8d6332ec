package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The tag list is held in memory whole; its bound must hold for the whole
// list, not for each upstream page (100 pages of 16 MiB each is 1.6 GB).
func TestTagListBoundCoversAllPages(t *testing.T) {
	const pages = 3
	pad := strings.Repeat("x", 110)
	perPage := (maxTagListSize/2)/(len(pad)+10) + 1 // each page a little over half the bound
	body := make([][]byte, pages)
	for p := range body {
		tags := make([]string, perPage)
		for i := range tags {
			tags[i] = fmt.Sprintf("p%d-%07d-%s", p, i, pad)
		}
		body[p], _ = json.Marshal(map[string]any{"name": "team/app", "tags": tags})
	}
	f := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		p := 0
		if last := r.URL.Query().Get("last"); last != "" {
			fmt.Sscanf(last, "p%d-", &p)
			p++
		}
		if p+1 < pages {
			w.Header().Set("Link", fmt.Sprintf(`</v2/team/app/tags/list?n=%d&last=p%d-end>; rel="next"`, perPage, p))
		}
		_, _ = w.Write(body[p])
	}))
	t.Cleanup(f.Close)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	resp, b := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/tags/list", nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a %d-byte tag list (bound %d) answered %d (%d bytes), want 502", pages*len(body[0]), maxTagListSize, resp.StatusCode, len(b))
	}
	if !strings.Contains(string(b), "too large") {
		t.Errorf("error does not say the list is too large: %s", b)
	}
}
