package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// openFromRoute is the cache's ranged way upstream to the blob of path.
func openFromRoute(t *testing.T, p *proxyFixture, path string) func(context.Context, int64) (io.ReadCloser, int64, error) {
	t.Helper()
	rt, err := parseRoute(&url.URL{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return p.srv.blobs.upstream(rt).OpenFrom
}

// TestUpstreamOpenFromIsRanged: a fleet follower whose peer went away goes
// on from upstream with a ranged GET from where it was, not the whole blob.
func TestUpstreamOpenFromIsRanged(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 256<<10, 1), nil)
	d, blob := firstLayer(t, up, "team/app", "v1")
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	openFrom := openFromRoute(t, p, "/v2/"+testHost+"/team/app/blobs/"+d.String())

	const off = 100_000
	body, size, err := openFrom(context.Background(), off)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	_ = body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(blob)) || !bytes.Equal(got, blob[off:]) {
		t.Fatalf("OpenFrom(%d): size %d (want %d), %d bytes, equal to the blob's tail: %v", off, size, len(blob), len(got), bytes.Equal(got, blob[off:]))
	}
	ranged := 0
	for _, r := range up.log.all() {
		if r.Method == http.MethodGet && strings.Contains(r.Path, "/blobs/") {
			if r.Range != "bytes="+strconv.Itoa(off)+"-" {
				t.Errorf("blob GET upstream with Range %q, want bytes=%d-", r.Range, off)
			}
			ranged++
		}
	}
	if ranged != 1 {
		t.Errorf("blob GETs upstream = %d, want 1: %+v", ranged, up.log.all())
	}
	// From the blob's end: nothing left, which the upstream says with 416.
	body, size, err = openFrom(context.Background(), int64(len(blob)))
	if err != nil {
		t.Fatalf("OpenFrom(the blob's size): %v", err)
	}
	if rest, _ := io.ReadAll(body); len(rest) != 0 || size != int64(len(blob)) {
		t.Fatalf("OpenFrom(the blob's size): %d bytes, size %d; want none of %d", len(rest), size, len(blob))
	}
	_ = body.Close()
	// Past it: an error, not an empty body.
	if body, _, err := openFrom(context.Background(), int64(len(blob))+10); err == nil {
		_ = body.Close()
		t.Fatal("OpenFrom past the blob's end gave a body")
	}
}

// TestUpstreamOpenFromUpstreamsThatIgnoreOrBendTheRange: an upstream that
// answers 200 with the whole blob still gives the tail; one whose 206
// starts elsewhere is refused, never spliced in.
func TestUpstreamOpenFromUpstreamsThatIgnoreOrBendTheRange(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	var contentRange string // "" ignores the range
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			w.WriteHeader(http.StatusOK)
			return
		}
		if contentRange == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
			_, _ = w.Write(blob)
			return
		}
		w.Header().Set("Content-Range", contentRange)
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(blob[:len(blob)-5000])
	}))
	t.Cleanup(srv.Close)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: srv.URL}})
	openFrom := openFromRoute(t, p, "/v2/"+testHost+"/team/app/blobs/sha256:"+strings.Repeat("a", 64))

	body, size, err := openFrom(context.Background(), 5000)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	_ = body.Close()
	if size != int64(len(blob)) || !bytes.Equal(got, blob[5000:]) {
		t.Fatalf("range ignored: size %d, %d bytes, equal to the tail: %v", size, len(got), bytes.Equal(got, blob[5000:]))
	}

	for _, cr := range []string{"bytes 0-4999/10000", "bytes 5000-9999/4000", "bytes 5000-9999", "items 5000-9999/10000", "bytes 5000-\n9999/10000"} {
		contentRange = cr
		body, _, err := openFrom(context.Background(), 5000)
		if err == nil {
			_ = body.Close()
			t.Errorf("Content-Range %q for a download from byte 5000 was taken", cr)
			continue
		}
		if strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("error for Content-Range %q is not one line: %q", cr, err)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in          string
		first, size int64
		ok          bool
	}{
		{"bytes 0-9/10", 0, 10, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes 5-9/9", 0, 0, false},
		{"bytes 9-5/10", 0, 0, false},
		{"bytes -1-5/10", 0, 0, false},
		{"bytes 5-9", 0, 0, false},
		{"bytes=5-9/10", 0, 0, false},
		{"", 0, 0, false},
	} {
		first, size, ok := parseContentRange(tc.in)
		if ok != tc.ok || first != tc.first || size != tc.size {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tc.in, first, size, ok, tc.first, tc.size, tc.ok)
		}
	}
}
