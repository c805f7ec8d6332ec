package proxy

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// A request of thousands of tiny ranges must not multiply the response:
// past maxRanges the Range header is ignored and the whole blob answers
// (200), warm or cold, and the upstream is never asked for the ranges.
// Up to the cap, several ranges still get a multipart answer.
func TestManyRangesAnswerTheWholeBlob(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 96<<10, 1), nil)
	d, blob := firstLayer(t, up, "team/app", "v1")
	path := "/v2/" + testHost + "/team/app/blobs/" + d.String()
	hostile := "bytes=0-0" + strings.Repeat(",0-0", 3999) // 4,000 ranges, 16 KB

	for _, warm := range []bool{false, true} {
		p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
		if warm {
			if resp, _ := p.do(t, http.MethodGet, path, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("warming: %d", resp.StatusCode)
			}
		}
		up.log.reset()
		resp, body := p.do(t, http.MethodGet, path, http.Header{"Range": {hostile}})
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
			t.Fatalf("warm=%v: 4,000 ranges of a %d-byte blob answered %d with %d bytes, want 200 and the blob", warm, len(blob), resp.StatusCode, len(body))
		}
		for _, rec := range up.log.all() {
			if rec.Range != "" {
				t.Fatalf("warm=%v: the ranges went upstream: %.60s...", warm, rec.Range)
			}
		}

		atCap := "bytes=0-0" + strings.Repeat(",2-2", maxRanges-1)
		resp, body = p.do(t, http.MethodGet, path, http.Header{"Range": {atCap}})
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("warm=%v: %d ranges (the cap) answered %d, want 206", warm, maxRanges, resp.StatusCode)
		}
		if parts := readMultipartRanges(t, resp, body); len(parts) != maxRanges {
			t.Fatalf("warm=%v: %d ranges answered %d parts", warm, maxRanges, len(parts))
		}
	}
}
