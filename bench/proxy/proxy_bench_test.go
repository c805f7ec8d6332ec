package proxybench

// needs: docker-registry (Debian, distribution 2.8)
//
// Run (figures and machine in BENCHMARKS.md):
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./bench/proxy/
//
// Flags after -args: -image-mib 1024 -layers 8 -link-mbit 1000 -clients 20.

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

var (
	imageMiB = flag.Int("image-mib", 1024, "size of the benchmark image's layers in MiB, in total")
	layerN   = flag.Int("layers", 8, "number of layers")
	linkMbit = flag.Float64("link-mbit", 1000, "speed of the relay between the pullers and the upstream, Mbit/s")
	clients  = flag.Int("clients", 20, "concurrent clients for the concurrent cold pulls")
	parallel = flag.Int("parallel", 3, "blob downloads at a time per client (docker: 3)")
	verify   = flag.Bool("verify", true, "hash every blob in the client, as engines do; -verify=false measures what the proxy serves without the client's sha256 on the same 2 cores")
	dist3    = flag.String("distribution3", "", "path of distribution v3's registry binary, to compare with it too "+
		"(GOBIN=DIR go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2)")
)

const upstreamHost = "registry.test"

// env is what every sub-benchmark shares: the upstream, the relay in front
// of it, the seeded image and the built tollgate.
type env struct {
	upstream *harness.Registry
	relay    *harness.Relay
	img      BigImage
	bin      string
}

func (e *env) blobGets() map[string]int {
	m := map[string]int{}
	for _, b := range e.img.Blobs {
		m[b] = e.upstream.BlobGets(b)
	}
	return m
}

// fetchesPerBlob is the mean number of upstream GETs per blob since before.
func (e *env) fetchesPerBlob(before map[string]int) float64 {
	// The access log line is written when the response completes; give
	// the last ones a moment.
	time.Sleep(300 * time.Millisecond)
	total := 0
	for b, n := range e.blobGets() {
		total += n - before[b]
	}
	return float64(total) / float64(len(e.img.Blobs))
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
}

func pullOnce(b *testing.B, base, repo, ref string) PullResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	pullFn := Pull
	if !*verify {
		pullFn = PullUnverified
	}
	r, err := pullFn(ctx, newClient(), base, repo, ref, *parallel)
	if err != nil {
		b.Fatalf("pull %s/%s:%s: %v", base, repo, ref, err)
	}
	return r
}

// pullConcurrently runs n clients that pull at the same moment and returns
// the wall time until the last finished.
func pullConcurrently(b *testing.B, n int, base, repo, ref string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = Pull(ctx, newClient(), base, repo, ref, *parallel)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	d := time.Since(t0)
	for i, err := range errs {
		if err != nil {
			b.Fatalf("client %d: %v", i, err)
		}
	}
	return d
}

// warmPulls runs the timed warm pulls and reports the CPU time the proxy
// (process pid) and the client (this process) spent per pull: on two cores
// they compete, so the proxy's share shows how much of the wall time is its.
func warmPulls(b *testing.B, pid int, base, repo, tag string) {
	b.Helper()
	proxy0, err := ProcessCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	client0 := SelfCPU()
	b.ResetTimer()
	for range b.N {
		pullOnce(b, base, repo, tag)
	}
	b.StopTimer()
	proxy1, err := ProcessCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	client1 := SelfCPU()
	b.ReportMetric(float64(proxy1-proxy0)/float64(time.Millisecond)/float64(b.N), "proxy-CPU-ms/pull")
	b.ReportMetric(float64(client1-client0)/float64(time.Millisecond)/float64(b.N), "client-CPU-ms/pull")
}

func (e *env) startTollgate(b *testing.B) *harness.Proxy {
	return harness.StartProxy(b, e.bin, harness.ProxyConfig{
		Allowlist: []string{upstreamHost},
		Upstreams: map[string]string{upstreamHost: "http://" + e.relay.Addr},
		MaxSize:   "100GiB",
	})
}

func (e *env) startDistribution(b *testing.B, binary string) *harness.Registry {
	return harness.StartRegistry(b, harness.RegistryOptions{ProxyRemoteURL: "http://" + e.relay.Addr, Binary: binary})
}

// waitStored waits until distribution's background fill has stored every
// blob, so that a warm pull is really warm.
func (e *env) waitStored(b *testing.B, reg *harness.Registry) {
	deadline := time.Now().Add(10 * time.Minute)
	for _, blob := range e.img.Blobs {
		for !reg.HasBlob(blob) {
			if time.Now().After(deadline) {
				b.Fatalf("distribution never stored %s", blob)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func BenchmarkProxyPull(b *testing.B) {
	harness.RequireCommands(b, "docker-registry")
	e := &env{bin: harness.BuildBinaries(b)}
	e.upstream = harness.StartRegistry(b, harness.RegistryOptions{})
	layerSize := int64(*imageMiB) << 20 / int64(*layerN)
	var err error
	if e.img, err = SeedBigImage(e.upstream.Host, "bench/big", "v1", *layerN, layerSize, 1); err != nil {
		b.Fatal(err)
	}
	e.relay = harness.StartRelay(b, e.upstream.Host, *linkMbit*1e6/8)
	b.Logf("image: %d layers, %d MiB; link %g Mbit/s; %d concurrent clients", *layerN, e.img.LayerBytes>>20, *linkMbit, *clients)
	repo, tag := e.img.Repository, e.img.Tag
	viaTollgate := upstreamHost + "/" + repo

	// What the client's own hashing costs here, with no registry and no
	// network: the floor under any warm pull on this machine.
	b.Run("client-hash-only", func(b *testing.B) {
		b.SetBytes(e.img.LayerBytes)
		data := make([]byte, layerSize)
		for i := range data {
			data[i] = byte(i * 7)
		}
		client0 := SelfCPU()
		b.ResetTimer()
		for range b.N {
			HashLayers(data, *layerN, *parallel)
		}
		b.StopTimer()
		b.ReportMetric(float64(SelfCPU()-client0)/float64(time.Millisecond)/float64(b.N), "client-CPU-ms/pull")
	})

	b.Run("direct", func(b *testing.B) {
		b.SetBytes(e.img.LayerBytes)
		for range b.N {
			pullOnce(b, "http://"+e.relay.Addr, repo, tag)
		}
	})

	b.Run("tollgate-cold", func(b *testing.B) {
		b.SetBytes(e.img.LayerBytes)
		for range b.N {
			b.StopTimer()
			px := e.startTollgate(b)
			before := e.blobGets()
			b.StartTimer()
			pullOnce(b, px.URL, viaTollgate, tag)
			b.StopTimer()
			b.ReportMetric(e.fetchesPerBlob(before), "upstream-GETs/blob")
			px.Stop()
			b.StartTimer()
		}
	})

	b.Run("tollgate-warm", func(b *testing.B) {
		b.SetBytes(e.img.LayerBytes)
		px := e.startTollgate(b)
		pullOnce(b, px.URL, viaTollgate, tag)
		warmPulls(b, px.Process.Cmd.Process.Pid, px.URL, viaTollgate, tag)
	})

	// The same warm pull from a bare file server (in this process, blobs
	// with sendfile): how fast any registry could serve it on this machine.
	b.Run("static-files", func(b *testing.B) {
		b.SetBytes(e.img.LayerBytes)
		s, err := StartStaticServer(context.Background(), e.upstream.URL, repo, tag, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		pullOnce(b, s.URL, repo, tag)
		client0 := SelfCPU()
		b.ResetTimer()
		for range b.N {
			pullOnce(b, s.URL, repo, tag)
		}
		b.StopTimer()
		b.ReportMetric(float64(SelfCPU()-client0)/float64(time.Millisecond)/float64(b.N), "client+server-CPU-ms/pull")
	})

	b.Run(fmt.Sprintf("tollgate-cold-%dclients", *clients), func(b *testing.B) {
		b.SetBytes(e.img.LayerBytes * int64(*clients))
		for range b.N {
			b.StopTimer()
			px := e.startTollgate(b)
			before := e.blobGets()
			b.StartTimer()
			pullConcurrently(b, *clients, px.URL, viaTollgate, tag)
			b.StopTimer()
			b.ReportMetric(e.fetchesPerBlob(before), "upstream-GETs/blob")
			if rss, err := PeakRSS(px.Process.Cmd.Process.Pid); err == nil {
				b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
			} else {
				b.Error(err)
			}
			px.Stop()
			b.StartTimer()
		}
	})

	dists := []struct{ name, binary string }{{"distribution", ""}}
	if *dist3 != "" {
		dists = append(dists, struct{ name, binary string }{"distribution3", *dist3})
	}
	for _, dist := range dists {
		b.Run(dist.name+"-cold", func(b *testing.B) {
			b.SetBytes(e.img.LayerBytes)
			for range b.N {
				b.StopTimer()
				reg := e.startDistribution(b, dist.binary)
				before := e.blobGets()
				b.StartTimer()
				pullOnce(b, reg.URL, repo, tag)
				b.StopTimer()
				e.waitStored(b, reg)
				b.ReportMetric(e.fetchesPerBlob(before), "upstream-GETs/blob")
				reg.Stop()
				b.StartTimer()
			}
		})

		b.Run(dist.name+"-warm", func(b *testing.B) {
			b.SetBytes(e.img.LayerBytes)
			reg := e.startDistribution(b, dist.binary)
			pullOnce(b, reg.URL, repo, tag)
			e.waitStored(b, reg)
			warmPulls(b, reg.Process.Cmd.Process.Pid, reg.URL, repo, tag)
		})

		b.Run(fmt.Sprintf("%s-cold-%dclients", dist.name, *clients), func(b *testing.B) {
			b.SetBytes(e.img.LayerBytes * int64(*clients))
			for range b.N {
				b.StopTimer()
				reg := e.startDistribution(b, dist.binary)
				before := e.blobGets()
				b.StartTimer()
				pullConcurrently(b, *clients, reg.URL, repo, tag)
				b.StopTimer()
				e.waitStored(b, reg)
				b.ReportMetric(e.fetchesPerBlob(before), "upstream-GETs/blob")
				if rss, err := PeakRSS(reg.Process.Cmd.Process.Pid); err == nil {
					b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
				}
				reg.Stop()
				b.StartTimer()
			}
		})
	}
}
