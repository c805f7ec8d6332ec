package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spacelift-io/tollgate/internal/testwait"
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

// Concurrent requests for one repository's tag list share one upstream
// fetch: the list is held in memory whole, once per fetch.
func TestConcurrentTagListsShareOneFetch(t *testing.T) {
	arrived := make(chan struct{}, 64)
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	f := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		mu.Lock()
		calls++
		mu.Unlock()
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte(`{"name":"team/app","tags":["a","b"]}`))
	}))
	t.Cleanup(f.Close)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	// Shake hands first, so that the requests below only fetch the list.
	close(release)
	if resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/tags/list", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first list: %d %s", resp.StatusCode, body)
	}
	<-arrived
	p.srv.tagLists.Flush()
	mu.Lock()
	calls = 0
	mu.Unlock()
	release = make(chan struct{})

	const n = 8
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(p.URL + "/v2/" + testHost + "/team/app/tags/list")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("concurrent list: %d", resp.StatusCode)
			}
		}()
	}
	<-arrived
	// Hold the first fetch until every request is inside the proxy: one
	// that asked for the list after the fetch ended would be answered from
	// the list it stored, proving nothing about sharing the fetch.
	testwait.True(t, 10*time.Second, fmt.Sprintf("%d list requests in flight", n), func() bool {
		return testutil.ToFloat64(p.srv.metrics.inflight) == n
	})
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d concurrent tag list requests made %d upstream fetches, want 1", n, calls)
	}
}
