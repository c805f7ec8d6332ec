package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// fakeRegistry serves one image from memory and can be told to damage a
// blob: the tests' hostile upstream.
type fakeRegistry struct {
	*httptest.Server
	manifest     []byte
	manifestType string
	blobs        map[string][]byte
	damage       atomic.Value  // string: "", "truncate", "corrupt"
	blobStarted  chan struct{} // if set, receives once per blob GET before the delay
	blobDelay    time.Duration
	blobGets     atomic.Int64
	headNoType   atomic.Bool // HEAD of a manifest answers without Content-Type
	mu           sync.Mutex
	auth         []string // Authorization headers seen
}

func newFakeRegistry(t *testing.T, img v1.Image) *fakeRegistry {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	f := &fakeRegistry{manifest: raw, manifestType: string(mt), blobs: map[string][]byte{}}
	f.damage.Store("")
	cfgName, _ := img.ConfigName()
	cfg, _ := img.RawConfigFile()
	f.blobs[cfgName.String()] = cfg
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		b, _ := io.ReadAll(rc)
		rc.Close()
		f.blobs[d.String()] = b
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	p := r.URL.Path
	switch {
	case p == "/v2/":
		w.WriteHeader(http.StatusOK)
	case strings.Contains(p, "/manifests/"):
		if r.Method != http.MethodHead || !f.headNoType.Load() {
			w.Header().Set("Content-Type", f.manifestType)
		}
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(f.manifest).String())
		w.Header().Set("Content-Length", strconv.Itoa(len(f.manifest)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(f.manifest)
		}
	case strings.Contains(p, "/blobs/"):
		d := p[strings.LastIndex(p, "/")+1:]
		b, ok := f.blobs[d]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method == http.MethodHead {
			return
		}
		f.blobGets.Add(1)
		if f.blobStarted != nil {
			f.blobStarted <- struct{}{}
		}
		time.Sleep(f.blobDelay)
		switch f.damage.Load().(string) {
		case "truncate":
			// Announce the full length, send half, hang up.
			_, _ = w.Write(b[:len(b)/2])
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			panic(http.ErrAbortHandler)
		case "corrupt":
			bad := bytes.Clone(b)
			bad[len(bad)-1] ^= 0xff
			_, _ = w.Write(bad)
		default:
			_, _ = w.Write(b)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestDamagedBlobIsNeverCachedNorServedComplete(t *testing.T) {
	for _, damage := range []string{"truncate", "corrupt"} {
		t.Run(damage, func(t *testing.T) {
			img := randomImage(t, 256<<10, 1)
			f := newFakeRegistry(t, img)
			p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
			layers, _ := img.Layers()
			ld, _ := layers[0].Digest()
			path := "/v2/" + testHost + "/bad/img/blobs/" + ld.String()

			f.damage.Store(damage)
			for i := range 2 {
				checkDamagedResponse(t, i, p.URL+path, digest.Digest(ld.String()))
			}
			if n := f.blobGets.Load(); n != 2 {
				t.Fatalf("upstream blob GETs = %d, want 2 (a damaged fill must not be cached)", n)
			}
			if _, ok := p.cache.Stat(testHost, "bad/img", digest.Digest(ld.String())); ok {
				t.Fatal("damaged blob is in the cache")
			}

			// The real client sees an error too.
			if _, err := pull(p.ref(t, "bad/img:v1")); err == nil {
				t.Fatal("pull of a damaged image succeeded")
			}

			// Once the upstream heals, the blob is fetched, verified, cached.
			f.damage.Store("")
			if _, err := pull(p.ref(t, "bad/img:v1")); err != nil {
				t.Fatalf("pull after upstream healed: %v", err)
			}
			if _, ok := p.cache.Stat(testHost, "bad/img", digest.Digest(ld.String())); !ok {
				t.Fatal("healthy blob was not cached")
			}
		})
	}
}

func TestDamagedBlobWithoutCache(t *testing.T) {
	img := randomImage(t, 256<<10, 1)
	f := newFakeRegistry(t, img)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}, noCache: true})
	f.damage.Store("corrupt")
	if _, err := pull(p.ref(t, "bad/img:v1")); err == nil {
		t.Fatal("pull of a corrupt image through the uncached proxy succeeded")
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	checkDamagedResponse(t, 0, p.URL+"/v2/"+testHost+"/bad/img/blobs/"+ld.String(), digest.Digest(ld.String()))
	f.damage.Store("")
	if _, err := pull(p.ref(t, "bad/img:v1")); err != nil {
		t.Fatalf("pull through the uncached proxy: %v", err)
	}
}

func TestClientHangupDoesNotAbortFill(t *testing.T) {
	img := randomImage(t, 4<<20, 1)
	f := newFakeRegistry(t, img)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	d := digest.Digest(ld.String())

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/v2/"+testHost+"/bad/img/blobs/"+ld.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel() // hang up after the first kilobyte
	resp.Body.Close()

	// The fill finishes without the client: the next GET is a cache hit,
	// with no second upstream download.
	r, err := p.cache.Fetch(context.Background(), testHost, "bad/img", d, -1, p.srv.blobs.upstream(&route{kind: kindBlob, name: testRepo("bad/img"), reference: d.String(), digest: d}))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	r.Close()
	if err != nil || n != int64(len(f.blobs[d.String()])) {
		t.Fatalf("reading the blob after the hangup: %d bytes, %v", n, err)
	}
	if got := f.blobGets.Load(); got != 1 {
		t.Fatalf("upstream blob GETs = %d, want 1", got)
	}
	if _, ok := p.cache.Stat(testHost, "bad/img", d); !ok {
		t.Fatal("blob not committed after the client hung up")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("unreachable")
	}
}

// checkDamagedResponse asserts that a GET of a blob whose upstream copy is
// damaged fails visibly: either an OCI error status, or a body that does
// not end cleanly. Never a clean 200 with the whole (or bad) content.
func checkDamagedResponse(t *testing.T, attempt int, url string, want digest.Digest) {
	t.Helper()
	// A fresh connection each time: Go's client silently retries a GET
	// whose reused connection closes before any answer.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return // cut before the headers
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode < 500 || !strings.Contains(string(body), `"errors"`) {
			t.Fatalf("attempt %d: status %d with body %q, want a 5xx OCI error", attempt, resp.StatusCode, body)
		}
		return
	}
	if rerr == nil {
		t.Fatalf("attempt %d: damaged blob ended cleanly with 200 and %d bytes (matches digest: %v)", attempt, len(body), digest.FromBytes(body) == want)
	}
}

// A manifest cached for one repository and linked to another after an
// upstream HEAD that names no Content-Type keeps the media type it was
// stored with, instead of a guessed default.
func TestLinkedManifestKeepsItsMediaType(t *testing.T) {
	img := randomImage(t, 1024, 1)
	f := newFakeRegistry(t, img)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	d, _ := img.Digest()
	mt, _ := img.MediaType()
	resp, _ := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/a/manifests/"+d.String(), nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != string(mt) {
		t.Fatalf("first fetch: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	f.headNoType.Store(true)
	resp, _ = p.do(t, http.MethodGet, "/v2/"+testHost+"/team/b/manifests/"+d.String(), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("linked fetch: %s", resp.Status)
	}
	if got := resp.Header.Get("Content-Type"); got != string(mt) {
		t.Fatalf("linked manifest served as %q, stored as %q", got, mt)
	}
}
