package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

// readMultipartRanges parses a multipart/byteranges answer into its parts.
func readMultipartRanges(t *testing.T, resp *http.Response, body []byte) [][]byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" || params["boundary"] == "" {
		t.Fatalf("multi-range answer has Content-Type %q, want multipart/byteranges with a boundary", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts [][]byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("reading multipart answer: %v", err)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
}

func TestRangeEdgeCases(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 64<<10, 1), nil)
	d, blob := firstLayer(t, up, "team/app", "v1")
	path := "/v2/" + testHost + "/team/app/blobs/" + d.String()
	etag := `"` + d.String() + `"`

	for _, warm := range []bool{false, true} {
		name := "cold"
		if warm {
			name = "warm"
		}
		t.Run(name, func(t *testing.T) {
			fresh := func() *proxyFixture {
				p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
				if warm {
					if resp, _ := p.do(t, http.MethodGet, path, nil); resp.StatusCode != http.StatusOK {
						t.Fatalf("warming: %d", resp.StatusCode)
					}
				}
				return p
			}
			// Several ranges: one multipart/byteranges answer the client
			// can split.
			p := fresh()
			resp, body := p.do(t, http.MethodGet, path, http.Header{"Range": {"bytes=0-9,100-109"}})
			if resp.StatusCode != http.StatusPartialContent {
				t.Fatalf("multi-range: %d %s", resp.StatusCode, body)
			}
			parts := readMultipartRanges(t, resp, body)
			if len(parts) != 2 || !bytes.Equal(parts[0], blob[0:10]) || !bytes.Equal(parts[1], blob[100:110]) {
				t.Fatalf("multi-range parts %q", parts)
			}

			// If-Range naming another representation, or a date (a
			// digest-addressed blob has no modification time): the whole
			// blob, 200.
			for _, ir := range []string{`"sha256:other"`, "W/" + etag, "Mon, 02 Jan 2006 15:04:05 GMT"} {
				p = fresh()
				resp, body = p.do(t, http.MethodGet, path, http.Header{"Range": {"bytes=0-9"}, "If-Range": {ir}})
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
					t.Fatalf("If-Range %s: %d, %d bytes; want 200 and the whole blob", ir, resp.StatusCode, len(body))
				}
			}
			// If-Range with the blob's own ETag: the range.
			p = fresh()
			resp, body = p.do(t, http.MethodGet, path, http.Header{"Range": {"bytes=0-9"}, "If-Range": {etag}})
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, blob[:10]) {
				t.Fatalf("If-Range with the blob's ETag: %d, %d bytes; want 206 and the range", resp.StatusCode, len(body))
			}
			// The validator for a later If-Range comes with every answer.
			if got := resp.Header.Get("Etag"); got != etag {
				t.Fatalf("ETag of a range answer %q, want %q", got, etag)
			}

			// A range past the end: 416, an OCI error body, and the size
			// in Content-Range.
			p = fresh()
			resp, body = p.do(t, http.MethodGet, path, http.Header{"Range": {fmt.Sprintf("bytes=%d-", len(blob)+10)}})
			var errs struct {
				Errors []struct{ Code string } `json:"errors"`
			}
			if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || json.Unmarshal(body, &errs) != nil ||
				len(errs.Errors) != 1 || errs.Errors[0].Code != "RANGE_INVALID" {
				t.Fatalf("range past the end: %d %q %s; want 416 RANGE_INVALID", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", len(blob)) {
				t.Fatalf("range past the end: Content-Range %q", cr)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("range past the end: Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

// TestBlobLargerThanCacheIsServed: a blob larger than the whole cache budget
// is streamed past the cache (verified), not refused, and evicts nothing.
func TestBlobLargerThanCacheIsServed(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 64<<10, 1), nil)
	d, blob := firstLayer(t, up, "team/app", "v1")
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, maxSize: 32 << 10})
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatalf("pull of an image with a layer larger than the cache: %v", err)
	}
	resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/blobs/"+d.String(), nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
		t.Fatalf("blob larger than the cache: %d, %d bytes", resp.StatusCode, len(body))
	}
	if p.cache.Has(testHost, "team/app", d) {
		t.Fatal("a blob larger than the cache was cached")
	}
	if st := p.cache.Stats(); st.Evictions != 0 || st.Size == 0 {
		t.Fatalf("cache after a blob larger than it: %+v (want the manifest and config kept, nothing evicted)", st)
	}
}

// TestColdRangeOfUnknownBlobFetchesOnce: a range of a blob the upstream
// does not have is one upstream request; the background fill that warms
// the cache after a cold range starts only when the upstream served it.
func TestColdRangeOfUnknownBlobFetchesOnce(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 1), nil)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	up.log.reset()
	resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/blobs/sha256:"+strings.Repeat("0", 64), http.Header{"Range": {"bytes=0-9"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("range of an unknown blob: %d %s", resp.StatusCode, body)
	}
	// The handler has returned (and started any background work) once its
	// request is logged.
	testwait.True(t, 5*time.Second, "request logged", func() bool {
		return strings.Contains(p.logs.String(), "msg=request")
	})
	p.srv.fills.Wait()
	if n := up.log.count(http.MethodGet, "/blobs/"); n != 1 {
		t.Fatalf("range of an unknown blob: %d upstream GETs, want 1", n)
	}
}

// TestRangeOfFailingFillIsCut: a range that joins a fill in progress, and
// needs bytes the fill never verifies, is cut (the client sees an error, the
// log and metrics say aborted), not ended as a successful 206.
func TestRangeOfFailingFillIsCut(t *testing.T) {
	img := randomImage(t, 64<<10, 1)
	f := newFakeRegistry(t, img)
	f.blobStarted = make(chan struct{}, 1)
	f.blobDelay = 300 * time.Millisecond
	f.damage.Store("corrupt")
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	path := "/v2/" + testHost + "/team/app/blobs/" + ld.String()

	first := make(chan struct{})
	go func() {
		defer close(first)
		resp, err := http.Get(p.URL + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-f.blobStarted // the fill is in progress
	req, _ := http.NewRequest(http.MethodGet, p.URL+path, nil)
	req.Header.Set("Range", "bytes=-10")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil && resp.StatusCode == http.StatusPartialContent {
			t.Fatalf("range ending in bytes that never verified: clean 206 with %d bytes", len(body))
		}
	}
	<-first
	testwait.True(t, 5*time.Second, "both requests logged", func() bool {
		return strings.Count(p.logs.String(), "msg=request") >= 2
	})
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(line, "msg=request") && strings.Contains(line, "status=206") && !strings.Contains(line, "aborted=true") {
			t.Fatalf("the cut range is logged as a success: %s", line)
		}
	}
}
