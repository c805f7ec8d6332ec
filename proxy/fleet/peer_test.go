package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spacelift-io/tollgate/proxy/cache"
)

const (
	testHost = "registry.test"
	testRepo = "team/app"
)

// gatedUpstream serves one blob on a loopback socket; with a gate set it
// sends the first gateAt bytes and waits until the gate is opened.
type gatedUpstream struct {
	srv    *httptest.Server
	data   []byte
	d      digest.Digest
	gets   atomic.Int64
	gateAt int
	gate   chan struct{}
	// ranges are the Range headers of the ranged GETs it answered.
	rangesMu sync.Mutex
	ranges   []string
}

// rangeHeaders returns the Range headers the upstream was sent.
func (u *gatedUpstream) rangeHeaders() []string {
	u.rangesMu.Lock()
	defer u.rangesMu.Unlock()
	return append([]string(nil), u.ranges...)
}

func newGatedUpstream(t *testing.T, size, gateAt int) *gatedUpstream {
	t.Helper()
	u := &gatedUpstream{data: make([]byte, size), gateAt: gateAt, gate: make(chan struct{})}
	_, _ = rand.Read(u.data)
	u.d = digest.FromBytes(u.data)
	if gateAt < 0 {
		close(u.gate)
	}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.gets.Add(1)
		if rg := r.Header.Get("Range"); rg != "" {
			// Ranged GETs (bytes=N-) are answered at once, ungated.
			u.rangesMu.Lock()
			u.ranges = append(u.ranges, rg)
			u.rangesMu.Unlock()
			from, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			if err != nil || from >= len(u.data) {
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(u.data)-1, len(u.data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(u.data)-from))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(u.data[from:])
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(u.data)))
		if u.gateAt < 0 {
			_, _ = w.Write(u.data)
			return
		}
		_, _ = w.Write(u.data[:u.gateAt])
		w.(http.Flusher).Flush()
		select {
		case <-u.gate:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(u.data[u.gateAt:])
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *gatedUpstream) open() cache.Upstream {
	return cache.Upstream{
		Open: func(ctx context.Context) (io.ReadCloser, int64, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.srv.URL+"/blob", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, 0, err
			}
			return resp.Body, resp.ContentLength, nil
		},
		Check: func(context.Context) error { return nil },
	}
}

// openRanged is open with OpenFrom: a ranged GET, as the proxy's upstreams
// make.
func (u *gatedUpstream) openRanged() cache.Upstream {
	up := u.open()
	up.OpenFrom = func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.srv.URL+"/blob", nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusPartialContent {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("ranged GET: %s", resp.Status)
		}
		return resp.Body, int64(len(u.data)), nil
	}
	return up
}

// peerSetup is a cache served on a loopback peer listener, and a client.
type peerSetup struct {
	cache   *cache.Cache
	url     string
	metrics *Metrics
	client  *client
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startPeer(t *testing.T, mode string) *peerSetup {
	t.Helper()
	c, err := cache.Open(context.Background(), cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := newMetrics()
	sign := testSigner(t, testKey, mode)
	h := &peerHandler{blobs: c, sign: sign, log: log, metrics: m}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newPeerServer(h, log, context.Background())
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return &peerSetup{cache: c, url: "http://" + ln.Addr().String(), metrics: m, client: newClient(sign, newMetrics(), nil), logs: logs}
}

func TestPeerStreamsCommittedAndFillingBlobs(t *testing.T) {
	p := startPeer(t, "private")
	ctx := context.Background()

	// A fill in progress, held after 300 KiB: a peer gets those bytes now.
	u := newGatedUpstream(t, 1<<20, 300<<10)
	r, err := p.cache.Fetch(ctx, testHost, testRepo, u.d, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	body, size, err := p.client.open(ctx, p.url, testHost, "another/repo", u.d)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(u.data)) {
		t.Fatalf("size = %d, want the announced %d", size, len(u.data))
	}
	first := make([]byte, 300<<10)
	if _, err := io.ReadFull(body, first); err != nil {
		t.Fatalf("reading the first bytes of a fill in progress: %v", err)
	}
	if !bytes.Equal(first, u.data[:len(first)]) {
		t.Fatal("first bytes differ")
	}
	close(u.gate)
	rest, err := io.ReadAll(body)
	_ = body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(first, rest...), u.data) {
		t.Fatal("peer content differs")
	}
	if g := u.gets.Load(); g != 1 {
		t.Fatalf("upstream GETs = %d, want 1 (the peer is one more reader of the fill)", g)
	}
	// Bytes read from the peer are counted.
	if got := testutil.ToFloat64(p.client.metrics.peerBytes); got != float64(len(u.data)) {
		t.Fatalf("peer bytes = %v, want %d", got, len(u.data))
	}

	// Committed now: GET, HEAD and a range.
	body, _, err = p.client.open(ctx, p.url, testHost, testRepo, u.d)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(body)
	_ = body.Close()
	if err != nil || !bytes.Equal(all, u.data) {
		t.Fatalf("committed blob: err %v, equal %v", err, bytes.Equal(all, u.data))
	}
	for _, c := range []struct {
		method, rng string
		status      int
		want        []byte
	}{
		{http.MethodHead, "", http.StatusOK, nil},
		{http.MethodGet, "bytes=10-19", http.StatusPartialContent, u.data[10:20]},
	} {
		req, _ := http.NewRequest(c.method, p.url+"/v2/"+testHost+"/"+testRepo+"/blobs/"+u.d.String(), nil)
		if c.rng != "" {
			req.Header.Set("Range", c.rng)
		}
		p.client.sign.sign(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !bytes.Equal(b, c.want) {
			t.Errorf("%s %s: %s, %d bytes", c.method, c.rng, resp.Status, len(b))
		}
		if c.method == http.MethodHead && resp.ContentLength != int64(len(u.data)) {
			t.Errorf("HEAD Content-Length = %d", resp.ContentLength)
		}
	}
	if err := p.client.ping(ctx, p.url); err != nil {
		t.Fatalf("ping: %v", err)
	}
	secret, _ := NewSecret([]byte(testKey))
	if err := Ping(ctx, secret, "private", p.url); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := Ping(ctx, secret, "public", p.url); !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Ping in another mode: %v, want a 403", err)
	}
}

func TestPeerRefusesNonMembersBeforeAnything(t *testing.T) {
	p := startPeer(t, "private")
	ctx := context.Background()
	u := newGatedUpstream(t, 64<<10, -1)
	r, err := p.cache.Fetch(ctx, testHost, testRepo, u.d, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	blob := p.url + "/v2/" + testHost + "/" + testRepo + "/blobs/" + u.d.String()

	do := func(s *signer, method, url string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if s != nil {
			s.sign(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	other := testSigner(t, "another-secret-of-16-bytes-or-more", "private")
	public := testSigner(t, testKey, "public")
	late := p.client.sign
	late.now = func() time.Time { return time.Now().Add(-time.Hour) }
	for name, c := range map[string]struct {
		s      *signer
		status int
	}{
		"no signature":   {nil, http.StatusUnauthorized},
		"another secret": {&other, http.StatusForbidden},
		"public mode":    {&public, http.StatusForbidden},
		"stale":          {&late, http.StatusForbidden},
	} {
		resp, b := do(c.s, http.MethodGet, blob)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %s, want %d", name, resp.Status, c.status)
		}
		if bytes.Contains(b, u.data[:32]) || resp.Header.Get("Docker-Content-Digest") != "" {
			t.Errorf("%s: the response carries the blob or its digest", name)
		}
	}
	// Unknown paths, even unsigned, answer like any refused request.
	if resp, _ := do(nil, http.MethodGet, p.url+"/v2/"+testHost+"/"+testRepo+"/manifests/latest"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned manifest request: %s", resp.Status)
	}
	// Members: no manifests, tags or unknown blobs.
	for _, path := range []string{"/manifests/latest", "/tags/list", "/blobs/sha256:" + strings.Repeat("0", 64)} {
		if resp, _ := do(&p.client.sign, http.MethodGet, p.url+"/v2/"+testHost+"/"+testRepo+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("member GET %s: %s, want 404", path, resp.Status)
		}
	}
	if resp, _ := do(&p.client.sign, http.MethodDelete, blob); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %s", resp.Status)
	}
	if got := testutil.ToFloat64(p.metrics.refused.WithLabelValues("unsigned")); got != 2 {
		t.Errorf("refused unsigned = %v, want 2", got)
	}
	if strings.Contains(p.logs.String(), testKey) {
		t.Fatal("the logs show the fleet secret")
	}
	// A client of another fleet is told why, without the secret.
	c2 := newClient(public, newMetrics(), nil)
	if _, _, err := c2.open(ctx, p.url, testHost, testRepo, u.d); !errors.Is(err, ErrPeer) {
		t.Fatalf("other-mode client: %v", err)
	}
	if got := testutil.ToFloat64(c2.metrics.peerErrors.WithLabelValues("refused")); got != 1 {
		t.Fatalf("peer errors refused = %v", got)
	}
}

func TestPeerStreamOfAFailedFillNeverEndsCleanly(t *testing.T) {
	p := startPeer(t, "private")
	ctx := context.Background()
	u := newGatedUpstream(t, 256<<10, 100<<10)
	// The upstream lies: content of another digest.
	wrong := digest.FromString("not this content")
	r, err := p.cache.Fetch(ctx, testHost, testRepo, wrong, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	body, _, err := p.client.open(ctx, p.url, testHost, testRepo, wrong)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	close(u.gate)
	got, err := io.ReadAll(body)
	if err == nil {
		t.Fatalf("peer stream of a fill that failed verification ended cleanly after %d bytes", len(got))
	}
	if len(got) >= len(u.data) {
		t.Fatalf("peer received all %d bytes of content that failed verification", len(got))
	}
}

func TestPeerIdleStreamIsCut(t *testing.T) {
	p := startPeer(t, "private")
	ctx := context.Background()
	u := newGatedUpstream(t, 256<<10, 100<<10)
	t.Cleanup(func() { close(u.gate) })
	r, err := p.cache.Fetch(ctx, testHost, testRepo, u.d, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p.client.idle = 300 * time.Millisecond
	body, _, err := p.client.open(ctx, p.url, testHost, testRepo, u.d)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if !errors.Is(err, ErrPeer) || len(got) != 100<<10 {
		t.Fatalf("silent peer: read %d bytes, err %v; want the first 100 KiB then ErrPeer", len(got), err)
	}
}
