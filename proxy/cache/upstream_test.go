package cache

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
)

// testUpstream is a real HTTP server on loopback serving blobs by digest at
// /<repo>/<digest>. Its pace and faults are controlled by the test.
type testUpstream struct {
	t   testing.TB
	srv *httptest.Server

	mu    sync.Mutex
	blobs map[digest.Digest][]byte
	// repos limits which repositories have which blob; nil means all.
	repos map[string]map[digest.Digest]bool
	// gate, when set, holds every GET after gateAfter bytes until closed.
	gate      chan struct{}
	gateAfter int
	// sent is closed (once) when a GET has sent gateAfter bytes.
	sent     chan struct{}
	sentOnce sync.Once
	// fault: "" | "corrupt" (flip a byte) | "truncate" (send half, then cut)
	// | "stall" (headers, then nothing).
	fault string
	// denyGate, when set, holds refused GETs (404) until closed. Set it
	// before the server gets requests.
	denyGate chan struct{}

	gets  atomic.Int32
	heads atomic.Int32
}

func newUpstream(t testing.TB) *testUpstream {
	u := &testUpstream{t: t, blobs: map[digest.Digest][]byte{}, sent: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *testUpstream) add(data []byte) digest.Digest {
	d := digest.FromBytes(data)
	u.mu.Lock()
	u.blobs[d] = data
	u.mu.Unlock()
	return d
}

func (u *testUpstream) serve(w http.ResponseWriter, r *http.Request) {
	i := strings.LastIndex(r.URL.Path, "/")
	repo, d := strings.TrimPrefix(r.URL.Path[:i], "/"), digest.Digest(r.URL.Path[i+1:])
	u.mu.Lock()
	data, ok := u.blobs[d]
	if u.repos != nil && !u.repos[repo][d] {
		ok = false
	}
	gate, gateAfter, fault := u.gate, u.gateAfter, u.fault
	u.mu.Unlock()
	if r.Method == http.MethodHead {
		u.heads.Add(1)
	} else {
		u.gets.Add(1)
	}
	if !ok {
		if dg := u.denyGate; dg != nil && r.Method == http.MethodGet {
			<-dg
		}
		http.Error(w, "blob unknown", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if r.Method == http.MethodHead {
		return
	}
	if fault == "corrupt" {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	fl := w.(http.Flusher)
	if fault == "stall" {
		fl.Flush()
		<-r.Context().Done()
		return
	}
	if fault == "truncate" {
		// Sending fewer bytes than Content-Length makes net/http close the
		// connection: the client sees an unexpected EOF.
		data = data[:len(data)/2]
	}
	first := len(data)
	if gate != nil && gateAfter < first {
		first = gateAfter
	}
	_, _ = w.Write(data[:first])
	fl.Flush()
	if gate != nil {
		u.sentOnce.Do(func() { close(u.sent) })
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	_, _ = w.Write(data[first:])
}

// source is the Upstream for (repo, d): GET to open, HEAD to check.
func (u *testUpstream) source(repo string, d digest.Digest) Upstream {
	return u.sourceURL(u.srv.URL + "/" + repo + "/" + string(d))
}

func (u *testUpstream) sourceURL(url string) Upstream {
	return Upstream{
		Open: func(ctx context.Context) (io.ReadCloser, int64, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return nil, 0, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, 0, err
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				return nil, 0, fmt.Errorf("%w: upstream answered %s", errUpstreamStatus, resp.Status)
			}
			return resp.Body, resp.ContentLength, nil
		},
		Check: func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%w: upstream answered %s", errUpstreamStatus, resp.Status)
			}
			return nil
		},
	}
}

// hold makes GETs pause after n bytes until release.
func (u *testUpstream) hold(n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.gate, u.gateAfter = make(chan struct{}), n
}

func (u *testUpstream) release() {
	u.mu.Lock()
	defer u.mu.Unlock()
	close(u.gate)
}

func (u *testUpstream) setFault(f string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fault = f
}

func (u *testUpstream) setRepos(r map[string]map[digest.Digest]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.repos = r
}

var errUpstreamStatus = errors.New("upstream status")

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func openCache(t testing.TB, dir string, opts Options) *Cache {
	t.Helper()
	opts.Dir = dir
	if opts.Logger == nil && !testing.Verbose() {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// waitFills waits until no fill is in progress.
func waitFills(t testing.TB, c *Cache) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.fillWG.Wait(); close(done) }()
	<-done
}
