package proxybench

// needs: docker-registry (Debian, distribution 2.8), weed (SeaweedFS, built
// by scripts/install-test-deps.sh); redis-server with -fleet-lease redis
//
// Run (figures and machine in BENCHMARKS.md, section "Fleet"):
//
//	go test -run '^$' -bench BenchmarkFleetPull -benchtime 1x -timeout 30m ./bench/proxy/ \
//	    -args -fleet-hosts 5 -fleet-layers 4 -fleet-layer-mib 32 -link-mbit 1000 \
//	    -fleet-tier s3 -fleet-lease redis   # or -fleet-lease shared, -fleet-tier filesystem

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

var (
	fleetHosts    = flag.Int("fleet-hosts", 5, "proxies in the fleet benchmark, each pulling the image at the same moment")
	fleetLayers   = flag.Int("fleet-layers", 4, "layers of the fleet benchmark's image")
	fleetLayerMiB = flag.Int("fleet-layer-mib", 32, "size of each layer of the fleet benchmark's image, MiB")
	fleetVerify   = flag.Bool("fleet-verify", true, "the fleet benchmark's clients hash every blob as engines do; false skips that (the proxies still verify)")
	fleetLease    = flag.String("fleet-lease", "shared", "the fleet benchmark's lease engine: shared (the tier's own store: the SeaweedFS bucket, or the filesystem) or redis (a redis-server)")
	fleetTier     = flag.String("fleet-tier", "s3", "the fleet benchmark's shared tier: s3 (a SeaweedFS bucket, which holds the leases too) or filesystem (a directory; leases in redis-server)")
)

// fleetEnv is one fleet benchmark set-up: an upstream behind the relay, a
// shared tier, a lease engine.
type fleetEnv struct {
	env
	bin    string // where the tollgate binary is
	shared string // filesystem tier: its directory
	redis  *harness.Redis
	store  *harness.ObjectStore
	secret string
}

// tierYAML is the proxy.shared section (and the lease spec) of one run.
func (e *fleetEnv) tierYAML(run string) (tier, leaseSpec string) {
	leaseSpec = lease.SpecShared
	if e.redis != nil {
		leaseSpec = e.redis.URL
	}
	if *fleetTier != "s3" {
		return fmt.Sprintf("  shared:\n    driver: filesystem\n    parameters:\n      rootdirectory: %q\n", e.shared), leaseSpec
	}
	params := e.store.SharedParameters("/" + run)
	keys := slices.Sorted(maps.Keys(params))
	var b strings.Builder
	b.WriteString("  shared:\n    driver: s3\n    parameters:\n")
	for _, k := range keys {
		if v, ok := params[k].(string); ok {
			fmt.Fprintf(&b, "      %s: %q\n", k, v)
		} else {
			fmt.Fprintf(&b, "      %s: %v\n", k, params[k])
		}
	}
	return b.String(), leaseSpec
}

// startFleetProxies starts n proxies sharing the tier; with fleet, also
// one fleet (peer listeners on 127.0.0.x, leases in Redis).
func (e *fleetEnv) startFleetProxies(b *testing.B, n int, fleet bool, run string) []*harness.Proxy {
	var pxs []*harness.Proxy
	var wg sync.WaitGroup
	var mu sync.Mutex
	tier, leaseSpec := e.tierYAML(run)
	for i := range n {
		extra := tier
		if fleet {
			ip := fmt.Sprintf("127.0.0.%d", 20+i)
			ln, err := net.Listen("tcp", ip+":0")
			if err != nil {
				b.Fatal(err)
			}
			listen := ln.Addr().String()
			ln.Close()
			extra += fmt.Sprintf("  fleet:\n    listen: %q\n    secret_file: %q\n    lease: %q\n", listen, e.secret, leaseSpec)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			px := harness.StartProxy(b, e.bin, harness.ProxyConfig{
				Allowlist:  []string{upstreamHost},
				Upstreams:  map[string]string{upstreamHost: "http://" + e.relay.Addr},
				MaxSize:    "100GiB",
				ProxyExtra: extra,
			})
			mu.Lock()
			pxs = append(pxs, px)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return pxs
}

// pullEach pulls the image through every proxy at the same moment (one
// client per host) and returns each host's pull time. -fleet-verify=false
// skips the clients' hashing (the proxies still verify).
func pullEach(b *testing.B, pxs []*harness.Proxy, repo, tag string) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	times := make([]time.Duration, len(pxs))
	errs := make([]error, len(pxs))
	start := make(chan struct{})
	pullFn := Pull
	if !*fleetVerify {
		pullFn = PullUnverified
	}
	var wg sync.WaitGroup
	for i, px := range pxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := pullFn(ctx, newClient(), px.URL, upstreamHost+"/"+repo, tag, *parallel)
			times[i], errs[i] = r.Duration, err
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("host %d: %v", i, err)
		}
	}
	return times
}

// BenchmarkFleetPull: N hosts pull one new image at the same moment
// through one upstream link, with the shared tier alone and in fleet
// mode. Reported per run: upstream blob GETs (in all, and of layers),
// upstream bytes (what crossed the relay), and the slowest host's pull
// time over one direct pull of the image over the same link.
func BenchmarkFleetPull(b *testing.B) {
	harness.RequireCommands(b, "docker-registry")
	e := &fleetEnv{bin: harness.BuildBinaries(b)}
	e.upstream = harness.StartRegistry(b, harness.RegistryOptions{})
	e.relay = harness.StartRelay(b, e.upstream.Host, *linkMbit*1e6/8)
	switch *fleetTier {
	case "s3":
		// A new SeaweedFS per run (startFleetProxies' caller): the test
		// harness's store holds about 512 MiB, and the shared-tier-only run
		// uploads the image once per host.
	case "filesystem":
	default:
		b.Fatalf("-fleet-tier %q: want s3 or filesystem", *fleetTier)
	}
	switch *fleetLease {
	case "redis":
		harness.RequireCommands(b, "redis-server")
		e.redis = harness.StartRedis(b)
	case "shared":
	default:
		b.Fatalf("-fleet-lease %q: want shared or redis", *fleetLease)
	}
	dir := b.TempDir()
	e.secret = filepath.Join(dir, "fleet.secret")
	if err := os.WriteFile(e.secret, []byte("benchmark-fleet-secret-0123456789"), 0o600); err != nil {
		b.Fatal(err)
	}
	layerSize := int64(*fleetLayerMiB) << 20
	b.Logf("image: %d x %d MiB; link %g Mbit/s; %d hosts; tier %s; leases %s", *fleetLayers, *fleetLayerMiB, *linkMbit, *fleetHosts, *fleetTier, *fleetLease)

	// One direct pull of a fresh image over the link: the yardstick.
	img, err := SeedBigImage(e.upstream.Host, "bench/fleet", "direct", *fleetLayers, layerSize, 100)
	if err != nil {
		b.Fatal(err)
	}
	direct := pullOnce(b, "http://"+e.relay.Addr, img.Repository, img.Tag, *fleetVerify).Duration
	b.Logf("direct pull over the link: %s", direct.Round(time.Millisecond))

	for i, mode := range []struct {
		name  string
		fleet bool
	}{{"shared-tier-only", false}, {"fleet", true}} {
		b.Run(fmt.Sprintf("%s-%dhosts", mode.name, *fleetHosts), func(b *testing.B) {
			b.SetBytes(img.LayerBytes * int64(*fleetHosts))
			for n := range b.N {
				b.StopTimer()
				// A new image each run (and a new tier), so every pull is cold.
				e.shared = filepath.Join(dir, fmt.Sprintf("shared-%d-%d", i, n))
				if *fleetTier == "s3" {
					e.store = harness.StartSeaweedFS(b)
					warmStore(b, e.store)
				}
				e.img, err = SeedBigImage(e.upstream.Host, "bench/fleet", fmt.Sprintf("%s-%d", mode.name, n), *fleetLayers, layerSize, uint64(200+10*i+n))
				if err != nil {
					b.Fatal(err)
				}
				pxs := e.startFleetProxies(b, *fleetHosts, mode.fleet, fmt.Sprintf("run-%d-%d", i, n))
				before := e.blobGets()
				relay0 := e.relay.Bytes()
				cpu0 := fleetCPU(b, pxs)
				b.StartTimer()
				t0 := time.Now()
				times := pullEach(b, pxs, e.img.Repository, e.img.Tag)
				wall := time.Since(t0)
				b.StopTimer()
				// On a small machine N hosts share its cores: how busy they
				// were says whether the link or the CPU set the pace.
				cpu := fleetCPU(b, pxs) - cpu0
				b.ReportMetric(cpu.Seconds(), "CPU-s")
				b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores-busy")
				gets := e.fetchesPerBlob(before) * float64(len(e.img.Blobs))
				layerGets := 0
				for _, l := range e.img.Blobs[1:] {
					layerGets += e.upstream.BlobGets(l) - before[l]
				}
				slowest := slices.Max(times)
				b.ReportMetric(gets, "upstream-blob-GETs")
				b.ReportMetric(float64(layerGets), "upstream-layer-GETs")
				b.ReportMetric(float64(e.relay.Bytes()-relay0)/(1<<20), "upstream-MiB")
				b.ReportMetric(slowest.Seconds()/direct.Seconds(), "slowest/direct")
				b.ReportMetric(slices.Min(times).Seconds()/direct.Seconds(), "fastest/direct")
				b.Logf("%s: host pull times %v (direct %s)", mode.name, times, direct.Round(time.Millisecond))
				if mode.fleet {
					var leases []string
					for _, r := range []string{"taken", "held", "lost", "expired", "error"} {
						leases = append(leases, fmt.Sprintf("%s %g", r, scrapeSum(b, pxs, "tollgate_fleet_leases_total", `result="`+r+`"`)))
					}
					b.Logf("fleet: leases %s; peer MiB %.1f; peer errors %g", strings.Join(leases, ", "),
						scrapeSum(b, pxs, "tollgate_fleet_peer_bytes_total")/(1<<20), scrapeSum(b, pxs, "tollgate_fleet_peer_errors_total"))
					if scrapeSum(b, pxs, "tollgate_fleet_leases_total", `result="error"`) > 0 {
						// Say why: the run measured hosts without a fleet.
						_, stderr := pxs[0].Process.Output()
						for _, line := range strings.Split(stderr, "\n") {
							if strings.Contains(line, "lease engine unavailable") {
								b.Errorf("the lease engine failed: %s", line)
								break
							}
						}
					}
				}
				for _, px := range pxs {
					px.Stop()
				}
				if e.store != nil {
					e.store.Stop()
				}
				b.StartTimer()
			}
		})
	}
}

// fleetCPU is the CPU time of every proxy process and of this process (the
// clients, the relay, the upstream's Go side is a separate process and not
// counted).
func fleetCPU(b *testing.B, pxs []*harness.Proxy) time.Duration {
	total := SelfCPU()
	for _, px := range pxs {
		c, err := ProcessCPU(px.Process.Cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		total += c
	}
	return total
}

// scrapeSum sums a metric's samples whose labels contain every one of
// labels, over the proxies' /metrics.
func scrapeSum(b *testing.B, pxs []*harness.Proxy, name string, labels ...string) float64 {
	var sum float64
	for _, px := range pxs {
		resp, err := http.Get(px.URL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
	lines:
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
				continue
			}
			for _, l := range labels {
				if !strings.Contains(line, l) {
					continue lines
				}
			}
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				b.Fatalf("metric line %q: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

// warmStore takes and releases a lease in a new SeaweedFS: its first
// writes allocate volumes, which takes longer than the fleet's lease
// timeout (an S3 bucket has no such first-write cost).
func warmStore(b *testing.B, o *harness.ObjectStore) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := lease.Open(ctx, lease.SpecShared, "warm-up", "s3", o.SharedParameters("/warm-up"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, err := s.Acquire(ctx, "warm-up", "http://127.0.0.1:1", time.Minute)
	if err != nil {
		b.Fatalf("warming the object store up: %v", err)
	}
	if err := s.Release(ctx, l); err != nil {
		b.Fatalf("warming the object store up: %v", err)
	}
}
