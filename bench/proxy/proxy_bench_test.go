package proxybench

// needs: docker-registry (Debian, distribution 2.8)
//
// Run (figures, machine and the commands behind each target in
// BENCHMARKS.md; bench/compare.sh runs two trees side by side):
//
//	go test -run '^$' -bench ProxyPull -benchtime 1x -timeout 60m ./bench/proxy/
//
// Flags after -args: -image-mib 1024 -layers 8 -link-mbit 1000 -clients 20
// -rounds 1 -tollgate NAME=PATH (repeatable) -distribution3 PATH.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

var (
	imageMiB  = flag.Int("image-mib", 1024, "size of the benchmark image's layers in MiB, in total")
	layerN    = flag.Int("layers", 8, "number of layers")
	linkMbit  = flag.Float64("link-mbit", 1000, "speed of the relay between the pullers and the upstream, Mbit/s")
	clients   = flag.Int("clients", 20, "concurrent clients for the concurrent cold pulls")
	parallel  = flag.Int("parallel", 3, "blob downloads at a time per client (docker: 3)")
	rounds    = flag.Int("rounds", 1, "rounds per group: each group runs every one of its scenarios once per round, interleaved, the order reversed every other round, so load changes on a shared machine hit them alike")
	tollgates proxiesFlag
	dist3     = flag.String("distribution3", "", "path of distribution v3's registry binary, to compare with it too "+
		"(GOBIN=DIR go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2)")
)

func init() {
	flag.Var(&tollgates, "tollgate", "NAME=PATH: a `tollgate` to measure, as sub-benchmarks tollgate-NAME (repeatable; "+
		"default: built from this tree, named tollgate). PATH is the binary, a directory holding `tollgate`, "+
		"or a module tree to build ./cmd/tollgate from, such as an older checkout")
}

const (
	upstreamHost = "registry.test"
	gib          = 1 << 30
)

// proxiesFlag collects -tollgate NAME=PATH.
type proxiesFlag []struct{ name, path string }

func (p *proxiesFlag) String() string { return fmt.Sprint(*p) }

func (p *proxiesFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" || strings.ContainsAny(name, "/ #") {
		return fmt.Errorf("want NAME=PATH with a NAME without '/', ' ' or '#', got %q", v)
	}
	*p = append(*p, struct{ name, path string }{name, path})
	return nil
}

// proxyUnderTest is one tollgate being measured: its sub-benchmark name and
// the directory holding its binary (what harness.StartProxy takes).
type proxyUnderTest struct{ name, binDir string }

// proxiesUnderTest resolves -tollgate, or builds this tree's when none is given.
func proxiesUnderTest(b *testing.B) []proxyUnderTest {
	if len(tollgates) == 0 {
		return []proxyUnderTest{{"tollgate", harness.BuildBinaries(b)}}
	}
	var out []proxyUnderTest
	for _, t := range tollgates {
		dir, err := tollgateBinDir(t.path, b.TempDir())
		if err != nil {
			b.Fatalf("-tollgate %s=%s: %v", t.name, t.path, err)
		}
		out = append(out, proxyUnderTest{"tollgate-" + t.name, dir})
	}
	return out
}

// tollgateBinDir returns a directory holding the tollgate binary that path
// names: the binary itself (linked into scratch when it has another name),
// a directory holding `tollgate`, or a module tree, which is built into
// scratch.
func tollgateBinDir(path, scratch string) (string, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		if filepath.Base(path) == "tollgate" {
			return filepath.Dir(path), nil
		}
		return scratch, os.Symlink(path, filepath.Join(scratch, "tollgate"))
	}
	if _, err := os.Stat(filepath.Join(path, "tollgate")); err == nil {
		return path, nil
	}
	if _, err := os.Stat(filepath.Join(path, "go.mod")); err != nil {
		return "", errors.New("neither a tollgate binary, nor a directory holding one, nor a module tree")
	}
	cmd := exec.Command("go", "build", "-o", scratch+string(filepath.Separator), "./cmd/tollgate")
	cmd.Dir = path
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tollgate in %s: %w\n%s", path, err, out)
	}
	return scratch, nil
}

// env is what every sub-benchmark shares: the upstream, the relay in front
// of it, the seeded image and the proxies under test.
type env struct {
	upstream  *harness.Registry
	relay     *harness.Relay
	img       BigImage
	layerSize int64
	proxies   []proxyUnderTest
	dists     []distribution
}

// distribution is one build of distribution's registry to compare with:
// "docker-registry" is Debian's 2.8.
type distribution struct{ name, binary string }

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

// perGiB turns a CPU time spent on n pulls into milliseconds per GiB pulled.
func (e *env) perGiB(cpu time.Duration, n int) float64 {
	return float64(cpu) / float64(time.Millisecond) / (float64(n) * float64(e.img.LayerBytes) / gib)
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
}

// pullOnce pulls repo:ref from base; verify hashes every blob as engines do,
// otherwise the client only counts the bytes.
func pullOnce(b *testing.B, base, repo, ref string, verify bool) PullResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	pullFn := Pull
	if !verify {
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

// scenario is one thing a group times.
type scenario struct {
	name string
	run  func(b *testing.B)
}

// interleave runs every scenario once per round, as sub-benchmarks of b,
// in the given order on even rounds and reversed on odd ones: on a shared
// machine, load that comes and goes hits them all alike. A name repeated
// in later rounds gets go test's #01, #02 ... suffix.
func interleave(b *testing.B, scenarios []scenario) {
	for round := range max(*rounds, 1) {
		order := slices.Clone(scenarios)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			b.Run(s.name, s.run)
		}
	}
}

func (e *env) startTollgate(b *testing.B, p proxyUnderTest, upstreamURL string) *harness.Proxy {
	return harness.StartProxy(b, p.binDir, harness.ProxyConfig{
		Allowlist: []string{upstreamHost},
		Upstreams: map[string]string{upstreamHost: upstreamURL},
		MaxSize:   "100GiB",
	})
}

func (e *env) startDistribution(b *testing.B, d distribution, upstreamURL string) *harness.Registry {
	return harness.StartRegistry(b, harness.RegistryOptions{ProxyRemoteURL: upstreamURL, Binary: d.binary})
}

// waitStored waits until distribution's background fill has stored every
// blob, so that a warm pull is really warm and a cold one has made all its
// upstream GETs.
func (e *env) waitStored(b *testing.B, reg *harness.Registry) {
	for _, blob := range e.img.Blobs {
		testwait.True(b, 10*time.Minute, "distribution stored "+blob, func() bool { return reg.HasBlob(blob) })
	}
}

func BenchmarkProxyPull(b *testing.B) {
	harness.RequireCommands(b, "docker-registry")
	e := &env{proxies: proxiesUnderTest(b), dists: []distribution{{"distribution", "docker-registry"}}}
	if *dist3 != "" {
		e.dists = append(e.dists, distribution{"distribution3", *dist3})
	}
	e.upstream = harness.StartRegistry(b, harness.RegistryOptions{})
	e.layerSize = int64(*imageMiB) << 20 / int64(*layerN)
	var err error
	if e.img, err = SeedBigImage(e.upstream.Host, "bench/big", "v1", *layerN, e.layerSize, 1); err != nil {
		b.Fatal(err)
	}
	e.relay = harness.StartRelay(b, e.upstream.Host, *linkMbit*1e6/8)
	b.Logf("image: %d layers, %d MiB; link %g Mbit/s; %d concurrent clients; %d rounds", *layerN, e.img.LayerBytes>>20, *linkMbit, *clients, *rounds)

	b.Run("client-hash-only", e.clientHashOnly)
	b.Run("cold", e.cold)
	b.Run("warm", func(b *testing.B) { e.warm(b, true) })
	b.Run("warm-nohash", func(b *testing.B) { e.warm(b, false) })
	b.Run(fmt.Sprintf("cold-%dclients", *clients), e.coldConcurrent)
}

// clientHashOnly is what the client's own hashing costs here, with no
// registry and no network: the floor under any verified warm pull.
func (e *env) clientHashOnly(b *testing.B) {
	b.SetBytes(e.img.LayerBytes)
	data := make([]byte, e.layerSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	client0 := SelfCPU()
	b.ResetTimer()
	for range b.N {
		HashLayers(data, *layerN, *parallel)
	}
	b.StopTimer()
	b.ReportMetric(e.perGiB(SelfCPU()-client0, b.N), "client-CPU-ms/GiB")
}

// cold: one client pulls over the rate-capped link, directly and through a
// fresh proxy each time (target: tollgate within 5 % of direct).
func (e *env) cold(b *testing.B) {
	repo, tag := e.img.Repository, e.img.Tag
	link := "http://" + e.relay.Addr
	scenarios := []scenario{{"direct", func(b *testing.B) {
		b.SetBytes(e.img.LayerBytes)
		for range b.N {
			pullOnce(b, link, repo, tag, true)
		}
	}}}
	for _, p := range e.proxies {
		scenarios = append(scenarios, scenario{p.name, func(b *testing.B) {
			b.SetBytes(e.img.LayerBytes)
			for range b.N {
				b.StopTimer()
				px := e.startTollgate(b, p, link)
				before := e.blobGets()
				b.StartTimer()
				pullOnce(b, px.URL, upstreamHost+"/"+repo, tag, true)
				b.StopTimer()
				b.ReportMetric(e.fetchesPerBlob(before), "upstream-GETs/blob")
				px.Stop()
				b.StartTimer()
			}
		}})
	}
	for _, d := range e.dists {
		scenarios = append(scenarios, scenario{d.name, func(b *testing.B) {
			b.SetBytes(e.img.LayerBytes)
			for range b.N {
				b.StopTimer()
				reg := e.startDistribution(b, d, link)
				before := e.blobGets()
				b.StartTimer()
				pullOnce(b, reg.URL, repo, tag, true)
				b.StopTimer()
				e.waitStored(b, reg)
				b.ReportMetric(e.fetchesPerBlob(before), "upstream-GETs/blob")
				reg.Stop()
				b.StartTimer()
			}
		}})
	}
	interleave(b, scenarios)
}

// warm: the image is in every server's storage already; the yardsticks
// (bare file servers, one per Sender, each in its own process), each
// tollgate and distribution serve it again. verify makes the client hash every blob as engines do (the
// target: tollgate within 1.10x of the faster yardstick); without it the
// client only counts bytes, which shows what the servers themselves serve.
// The servers are filled straight from the upstream: the link plays no part
// in a warm pull.
func (e *env) warm(b *testing.B, verify bool) {
	ctx := context.Background()
	repo, tag := e.img.Repository, e.img.Tag
	var scenarios []scenario

	local, err := CopyImage(ctx, e.upstream.URL, repo, tag, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, sender := range []Sender{Sendfile, WriteBuffer} {
		y := startYardstick(b, local, sender)
		pullOnce(b, y.URL, repo, tag, verify)
		scenarios = append(scenarios, scenario{sender.String(), func(b *testing.B) {
			e.warmPulls(b, y.Process.Cmd.Process.Pid, y.URL, repo, tag, verify)
		}})
	}
	for _, p := range e.proxies {
		px := e.startTollgate(b, p, e.upstream.URL)
		pullOnce(b, px.URL, upstreamHost+"/"+repo, tag, verify)
		scenarios = append(scenarios, scenario{p.name, func(b *testing.B) {
			e.warmPulls(b, px.Process.Cmd.Process.Pid, px.URL, upstreamHost+"/"+repo, tag, verify)
		}})
	}
	for _, d := range e.dists {
		reg := e.startDistribution(b, d, e.upstream.URL)
		pullOnce(b, reg.URL, repo, tag, verify)
		e.waitStored(b, reg)
		scenarios = append(scenarios, scenario{d.name, func(b *testing.B) {
			e.warmPulls(b, reg.Process.Cmd.Process.Pid, reg.URL, repo, tag, verify)
		}})
	}
	interleave(b, scenarios)
}

// warmPulls runs the timed warm pulls and reports the CPU time the server
// (process pid) and the client (this process) spent per GiB pulled: on two
// cores they compete, so the server's share shows how much of the wall
// time is its.
func (e *env) warmPulls(b *testing.B, pid int, base, repo, tag string, verify bool) {
	b.SetBytes(e.img.LayerBytes)
	server0, err := ProcessCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	client0 := SelfCPU()
	b.ResetTimer()
	for range b.N {
		pullOnce(b, base, repo, tag, verify)
	}
	b.StopTimer()
	server1, err := ProcessCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(e.perGiB(server1-server0, b.N), "server-CPU-ms/GiB")
	b.ReportMetric(e.perGiB(SelfCPU()-client0, b.N), "client-CPU-ms/GiB")
}

// coldConcurrent: -clients clients pull the image at the same moment from a
// fresh proxy (targets: each blob fetched from upstream once; tollgate's
// peak RSS under 100 MiB).
func (e *env) coldConcurrent(b *testing.B) {
	repo, tag := e.img.Repository, e.img.Tag
	link := "http://" + e.relay.Addr
	var scenarios []scenario
	for _, p := range e.proxies {
		scenarios = append(scenarios, scenario{p.name, func(b *testing.B) {
			b.SetBytes(e.img.LayerBytes * int64(*clients))
			for range b.N {
				b.StopTimer()
				px := e.startTollgate(b, p, link)
				before := e.blobGets()
				b.StartTimer()
				pullConcurrently(b, *clients, px.URL, upstreamHost+"/"+repo, tag)
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
		}})
	}
	for _, d := range e.dists {
		scenarios = append(scenarios, scenario{d.name, func(b *testing.B) {
			b.SetBytes(e.img.LayerBytes * int64(*clients))
			for range b.N {
				b.StopTimer()
				reg := e.startDistribution(b, d, link)
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
		}})
	}
	interleave(b, scenarios)
}
