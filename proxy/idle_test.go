package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A blob streamed straight from upstream (no cache, or a cold range) must
// not hang for as long as the client is willing to wait when the upstream
// stops sending: the proxy gives up after its idle timeout and cuts the
// response.
func TestStalledUpstreamBodyIsCut(t *testing.T) {
	stop := make(chan struct{})
	blob := strings.Repeat("x", 1<<20)
	d := "sha256:" + strings.Repeat("ab", 32)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		_, _ = io.WriteString(w, blob[:len(blob)/2])
		w.(http.Flusher).Flush()
		select { // stall, holding the connection open
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(stop) })
	p := startProxy(t, proxyOpts{noCache: true, endpoints: map[string]string{testHost: up.URL}})
	p.srv.blobs.bodyIdleTimeout = 300 * time.Millisecond

	client := &http.Client{Timeout: 20 * time.Second}
	start := time.Now()
	resp, err := client.Get(p.URL + "/v2/" + testHost + "/team/app/blobs/" + d)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a stalled upstream body ended cleanly")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the proxy waited %s on a stalled upstream (idle timeout %s): %v", took, p.srv.blobs.bodyIdleTimeout, err)
	}
}
