package cache

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// benchBlobSize is the blob the benchmarks move: 256 MiB, streamed by the
// upstream from a repeated 1 MiB pseudo-random block so the benchmark
// itself holds no big buffer.
const benchBlobSize = 256 << 20

var benchBlock = func() []byte {
	b := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}()

var benchDigest = sync.OnceValue(func() digest.Digest {
	h := sha256.New()
	for range benchBlobSize / len(benchBlock) {
		h.Write(benchBlock)
	}
	return digest.NewDigest(digest.SHA256, h)
})

// benchUpstream serves the benchmark blob over real HTTP on loopback.
func benchUpstream(b *testing.B) (Upstream, *httptest.Server) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(benchBlobSize))
		for range benchBlobSize / len(benchBlock) {
			if _, err := w.Write(benchBlock); err != nil {
				return
			}
		}
	}))
	b.Cleanup(srv.Close)
	return Upstream{Open: func(ctx context.Context) (io.ReadCloser, int64, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, 0, err
		}
		return resp.Body, resp.ContentLength, nil
	}}, srv
}

func benchOptions(dir string) Options {
	return Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)}
}

// BenchmarkColdFetch: one client, empty cache: download, hash, write,
// fsync, commit, while streaming to the client.
func BenchmarkColdFetch(b *testing.B) { benchCold(b, 1) }

// BenchmarkColdFetch20: 20 concurrent clients of the same cold blob; the
// upstream is read once.
func BenchmarkColdFetch20(b *testing.B) { benchCold(b, 20) }

func benchCold(b *testing.B, clients int) {
	d := benchDigest()
	up, _ := benchUpstream(b)
	b.SetBytes(benchBlobSize)
	b.ReportAllocs()
	stop := samplePeakHeap()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		c, err := Open(context.Background(), benchOptions(dir))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.Fetch(context.Background(), host, repo, d, benchBlobSize, up)
				if err != nil {
					b.Error(err)
					return
				}
				defer r.Close()
				if n, err := io.Copy(io.Discard, r); err != nil || n != benchBlobSize {
					b.Errorf("copied %d: %v", n, err)
				}
			}()
		}
		wg.Wait()
		waitFills(b, c)
		b.StopTimer()
		if got := c.Stats().Misses; got != 1 {
			b.Fatalf("fills = %d, want 1", got)
		}
		_ = c.Close(context.Background())
		_ = os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
}

// samplePeakHeap samples the live heap every 2 ms (runtime/metrics, no
// stop-the-world) until the returned function is called; it returns the
// peak in bytes.
func samplePeakHeap() func() uint64 {
	done := make(chan struct{})
	res := make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				res <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-res }
}

// BenchmarkWarmRead: committed blob, read with io.Copy (the WriterTo path;
// into a socket this becomes sendfile).
func BenchmarkWarmRead(b *testing.B) { benchWarm(b, false) }

// BenchmarkWarmReadAt: committed blob read through Read (the
// http.ServeContent path for Range requests), 32 KiB at a time.
func BenchmarkWarmReadAt(b *testing.B) { benchWarm(b, true) }

func benchWarm(b *testing.B, viaRead bool) {
	d := benchDigest()
	up, _ := benchUpstream(b)
	c, err := Open(context.Background(), benchOptions(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close(context.Background()) })
	r, err := c.Fetch(context.Background(), host, repo, d, benchBlobSize, up)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r)
	r.Close()
	waitFills(b, c)
	buf := make([]byte, 32<<10)
	b.SetBytes(benchBlobSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := c.Blob(context.Background(), host, repo, d)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		if viaRead {
			n, err = io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, buf)
		} else {
			n, err = io.Copy(io.Discard, r)
		}
		r.Close()
		if err != nil || n != benchBlobSize {
			b.Fatalf("copied %d: %v", n, err)
		}
	}
}
