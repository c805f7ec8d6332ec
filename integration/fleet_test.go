package integration

// Fleet mode (docs/fleet.md): several `tollgate proxy` processes, each with
// its own cache directory and its own peer listener on 127.0.0.x, one
// shared tier, one lease engine (redis-server), in front of a real
// registry behind a rate-capped relay.
//
// needs: skopeo docker-registry redis-server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

// fleetOptions shape a test fleet.
type fleetOptions struct {
	hosts int
	// rate caps the link to the upstream registry, bytes per second.
	rate float64
	// registry options (a login-protected upstream).
	registry harness.RegistryOptions
	// env per host index (e.g. SPACELIFT_DOCKER_CONFIG_DIR for some).
	env map[int][]string
	// secret per host index; default the fleet's.
	secret map[int]string
	// allowlist; default pubHost.
	allowlist []string
	// tier, when set, is the proxy.shared section's YAML (indented two
	// spaces, with its "shared:" key) and lease the proxy.fleet.lease
	// value; default a filesystem tier and the fleet's redis-server.
	tier, lease string
}

type testFleet struct {
	reg     *harness.Registry
	relay   *harness.Relay
	redis   *harness.Redis
	shared  string
	proxies []*fleetHost
}

type fleetHost struct {
	*harness.Proxy
	peerURL string
}

const fleetSecret = "fleet-test-secret-0123456789abcdef"

// loopbackPort returns a port that is free on the loopback address ip now.
func loopbackPort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s (every 127.0.0.0/8 address is loopback on Linux): %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fleet.secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startFleet(t *testing.T, o fleetOptions) *testFleet {
	t.Helper()
	harness.RequireCommands(t, "docker-registry")
	bin := harness.BuildBinaries(t)
	f := &testFleet{reg: harness.StartRegistry(t, o.registry), shared: filepath.Join(t.TempDir(), "shared")}
	if o.tier == "" {
		o.tier = fmt.Sprintf("  shared:\n    driver: filesystem\n    parameters:\n      rootdirectory: %q\n", f.shared)
	}
	if o.lease == "" {
		f.redis = harness.StartRedis(t)
		o.lease = f.redis.URL
	}
	f.relay = harness.StartRelay(t, f.reg.Host, o.rate)
	if o.allowlist == nil {
		o.allowlist = []string{pubHost}
	}
	secrets := map[string]string{}
	for i := range o.hosts {
		s := fleetSecret
		if o.secret[i] != "" {
			s = o.secret[i]
		}
		if secrets[s] == "" {
			secrets[s] = writeSecret(t, s)
		}
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		listen := fmt.Sprintf("%s:%d", ip, loopbackPort(t, ip))
		px := harness.StartProxy(t, bin, harness.ProxyConfig{
			Allowlist:  o.allowlist,
			Upstreams:  map[string]string{pubHost: f.relay.URL},
			ProxyExtra: o.tier + fmt.Sprintf("  fleet:\n    listen: %q\n    secret_file: %q\n    lease: %q\n", listen, secrets[s], o.lease),
		}, o.env[i]...)
		f.proxies = append(f.proxies, &fleetHost{Proxy: px, peerURL: "http://" + listen})
	}
	return f
}

// metric sums the samples of a metric on a proxy's /metrics whose labels
// contain every one of labels (e.g. `result="taken"`).
func metric(t *testing.T, px *harness.Proxy, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(px.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func fleetMetric(t *testing.T, f *testFleet, name string, labels ...string) float64 {
	var sum float64
	for _, px := range f.proxies {
		sum += metric(t, px.Proxy, name, labels...)
	}
	return sum
}

// getBlob GETs a blob through a proxy's client listener and returns the
// sha256 of what arrived (the response must end cleanly).
func getBlob(ctx context.Context, px *harness.Proxy, repo, d string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, px.URL+"/v2/"+pubHost+"/"+repo+"/blobs/"+d, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// cachedBlob reports whether a proxy's cache committed blob d.
func cachedBlob(px *harness.Proxy, d string) bool {
	alg, h, _ := strings.Cut(d, ":")
	_, err := os.Stat(filepath.Join(px.CacheDir, "blobs", alg, h[:2], h))
	return err == nil
}

// fillTemp returns the size of the largest fill in progress in a proxy's
// cache (its tmp/fill-* file), and its path.
func fillTemp(px *harness.Proxy) (string, int64) {
	matches, _ := filepath.Glob(filepath.Join(px.CacheDir, "tmp", "fill-*"))
	var best string
	var size int64
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.Size() >= size {
			best, size = m, fi.Size()
		}
	}
	return best, size
}

// pullEverywhereAtOnce pulls ref (a repository and tag of pubHost) through
// every proxy of f at the same moment with skopeo, each pull verified
// against img, then checks that every blob left the upstream once.
func pullEverywhereAtOnce(ctx context.Context, t *testing.T, f *testFleet, ref string, img harness.Image) {
	t.Helper()
	sk := harness.NewSkopeo(t)
	var wg sync.WaitGroup
	for _, px := range f.proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pullImage(ctx, t, sk, px.Host+"/"+pubHost+"/"+ref, img)
		}()
	}
	wg.Wait()
	for _, b := range img.Blobs() {
		if n := f.reg.BlobGets(b); n != 1 {
			t.Errorf("blob %s left the upstream %d times for %d hosts pulling at once, want 1", b, n, len(f.proxies))
		}
	}
}

// TestFleetPullsEachBlobFromUpstreamOnce: three hosts pull one new image at
// the same moment with skopeo; each blob leaves the upstream once, the
// others stream it from its filler, and every copy verifies.
func TestFleetPullsEachBlobFromUpstreamOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	f := startFleet(t, fleetOptions{hosts: 3, rate: 8 << 20})
	img := f.reg.SeedImage(t, "team/runner", "latest", harness.ImageSpec{Layers: 3, LayerSize: 3 << 20})
	pullEverywhereAtOnce(ctx, t, f, "team/runner:latest", img)
	if taken := fleetMetric(t, f, "tollgate_fleet_leases_total", `result="taken"`); taken != float64(len(img.Blobs())) {
		t.Errorf("leases taken across the fleet = %v, want one per blob (%d)", taken, len(img.Blobs()))
	}
	if peer := fleetMetric(t, f, "tollgate_fleet_peer_bytes_total"); peer == 0 {
		t.Error("no host read from a peer: the pulls did not overlap, so this run proved nothing about the fleet")
	}
	if errs := fleetMetric(t, f, "tollgate_fleet_peer_errors_total"); errs != 0 {
		t.Errorf("peer errors = %v", errs)
	}
}

// TestFleetHolderKilledMidFill: the host filling a blob is killed with
// SIGKILL while two others stream it from it; both still complete with the
// right digest, well within the lease expiry plus one fill.
func TestFleetHolderKilledMidFill(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	f := startFleet(t, fleetOptions{hosts: 3, rate: 2 << 20})
	img := f.reg.SeedImage(t, "team/runner", "latest", harness.ImageSpec{Layers: 1, LayerSize: 6 << 20})
	layer := img.Layers[0]
	holder, followers := f.proxies[0], f.proxies[1:]

	holderDone := make(chan error, 1)
	go func() {
		_, err := getBlob(ctx, holder.Proxy, "team/runner", layer)
		holderDone <- err
	}()
	testwait.True(t, time.Minute, "the holder's fill is under way", func() bool {
		_, n := fillTemp(holder.Proxy)
		return n > 256<<10 && metric(t, holder.Proxy, "tollgate_fleet_leases_total", `result="taken"`) == 1
	})
	type result struct {
		digest string
		err    error
	}
	results := make(chan result, len(followers))
	start := time.Now()
	for _, px := range followers {
		go func() {
			d, err := getBlob(ctx, px.Proxy, "team/runner", layer)
			results <- result{d, err}
		}()
	}
	testwait.True(t, time.Minute, "both followers stream from the holder", func() bool {
		for _, px := range followers {
			if metric(t, px.Proxy, "tollgate_fleet_peer_bytes_total") == 0 {
				return false
			}
		}
		return true
	})
	holder.Process.Kill()
	<-holderDone
	// The bound the issue sets: lease expiry (30 s) plus one fill (3 s at
	// 2 MiB/s; both followers share the link, so twice that).
	limit := 30*time.Second + 2*(6<<20)/(2<<20)*time.Second + 10*time.Second
	for range followers {
		select {
		case r := <-results:
			if r.err != nil || r.digest != layer {
				t.Fatalf("a follower's pull after the holder died: digest %s, err %v; want %s", r.digest, r.err, layer)
			}
		case <-time.After(limit - time.Since(start)):
			t.Fatalf("followers not done %s after the holder died (limit: lease expiry plus one fill)", time.Since(start))
		}
	}
	for _, px := range followers {
		if !cachedBlob(px.Proxy, layer) {
			t.Errorf("%s did not commit the layer", px.Host)
		}
		if metric(t, px.Proxy, "tollgate_fleet_peer_errors_total", `reason="broken"`) != 1 {
			t.Errorf("%s: the broken peer stream was not counted", px.Host)
		}
	}
}

// TestFleetLeaseEngineDownOrSlow: with the lease engine stopped (SIGSTOP:
// connections accepted, nothing answered) or gone, pulls work as without a
// fleet, after the short lease timeout; the failures are counted.
func TestFleetLeaseEngineDownOrSlow(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	f := startFleet(t, fleetOptions{hosts: 2, rate: 64 << 20})
	img := f.reg.SeedImage(t, "team/runner", "v1", harness.ImageSpec{Layers: 2})
	img2 := f.reg.SeedImage(t, "team/runner", "v2", harness.ImageSpec{Layers: 2})
	sk := harness.NewSkopeo(t)

	f.redis.Process.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { f.redis.Process.Signal(syscall.SIGCONT) })
	pullImage(ctx, t, sk, f.proxies[0].Host+"/"+pubHost+"/team/runner:v1", img)
	if n := metric(t, f.proxies[0].Proxy, "tollgate_fleet_leases_total", `result="error"`); n != float64(len(img.Blobs())) {
		t.Errorf("lease errors with a hung engine = %v, want %d", n, len(img.Blobs()))
	}
	f.redis.Process.Signal(syscall.SIGCONT)
	f.redis.Stop()
	pullImage(ctx, t, sk, f.proxies[1].Host+"/"+pubHost+"/team/runner:v2", img2)
	if n := metric(t, f.proxies[1].Proxy, "tollgate_fleet_leases_total", `result="error"`); n != float64(len(img2.Blobs())) {
		t.Errorf("lease errors with the engine gone = %v, want %d", n, len(img2.Blobs()))
	}
	// The shared tier still works without leases: host 1 finds v1's blobs there.
	pullImage(ctx, t, sk, f.proxies[1].Host+"/"+pubHost+"/team/runner:v1", img)
	for _, b := range img.Blobs() {
		if n := f.reg.BlobGets(b); n != 1 {
			t.Errorf("blob %s left the upstream %d times, want 1 (the second host reads the shared tier)", b, n)
		}
	}
}

// TestFleetNonMemberGetsNothing: a request without the fleet's signature,
// or signed with another secret, gets 401/403 and no content; a proxy
// configured with another secret never reads a blob from the fleet.
func TestFleetNonMemberGetsNothing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	f := startFleet(t, fleetOptions{hosts: 2, rate: 2 << 20, secret: map[int]string{1: "another-fleets-secret-0123456789"}})
	img := f.reg.SeedImage(t, "team/runner", "latest", harness.ImageSpec{Layers: 1, LayerSize: 3 << 20})
	layer := img.Layers[0]
	member, outsider := f.proxies[0], f.proxies[1]

	// Plain requests to the member's peer listener.
	for _, path := range []string{"/v2/", "/v2/" + pubHost + "/team/runner/blobs/" + layer, "/v2/" + pubHost + "/team/runner/manifests/latest"} {
		resp, err := http.Get(member.peerURL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(b), "sha256:") {
			t.Errorf("unsigned GET %s on the peer listener: %s %s", path, resp.Status, b)
		}
	}
	holderDone := make(chan error, 1)
	go func() {
		d, err := getBlob(ctx, member.Proxy, "team/runner", layer)
		if err == nil && d != layer {
			err = fmt.Errorf("digest %s", d)
		}
		holderDone <- err
	}()
	testwait.True(t, time.Minute, "the member's fill is under way", func() bool {
		_, n := fillTemp(member.Proxy)
		return n > 0
	})
	// The outsider shares the lease engine (a misconfiguration): it finds
	// the member holding the lease, is refused, and goes upstream.
	if d, err := getBlob(ctx, outsider.Proxy, "team/runner", layer); err != nil || d != layer {
		t.Fatalf("outsider pull: %s, %v", d, err)
	}
	if err := <-holderDone; err != nil {
		t.Fatal(err)
	}
	if n := metric(t, outsider.Proxy, "tollgate_fleet_leases_total", `result="held"`); n != 1 {
		t.Fatalf("the outsider did not find the lease held (%v): the test proved nothing", n)
	}
	if n := metric(t, outsider.Proxy, "tollgate_fleet_peer_errors_total", `reason="refused"`); n != 1 {
		t.Errorf("outsider refused = %v, want 1", n)
	}
	if n := metric(t, outsider.Proxy, "tollgate_fleet_peer_bytes_total"); n != 0 {
		t.Errorf("the outsider read %v bytes from a fleet it is not a member of", n)
	}
	if n := metric(t, member.Proxy, "tollgate_fleet_peer_served_bytes_total"); n != 0 {
		t.Errorf("the member served %v bytes to a non-member", n)
	}
	if n := metric(t, member.Proxy, "tollgate_fleet_peer_refused_total", `reason="bad_signature"`); n != 1 {
		t.Errorf("member refused bad signatures = %v, want 1", n)
	}
	if n := f.reg.BlobGets(layer); n != 2 {
		t.Errorf("upstream GETs = %d, want 2 (the outsider fetched its own copy)", n)
	}
	// Nothing of the secret in any log.
	for _, px := range f.proxies {
		_, stderr := px.Process.Output()
		if strings.Contains(stderr, fleetSecret) || strings.Contains(stderr, "another-fleets-secret") {
			t.Errorf("%s's log shows a fleet secret", px.Host)
		}
	}
}

// TestFleetPeerOnlyAfterUpstreamProof: a host whose repository the upstream
// refuses finds the lease held, yet never reads the blob from the peer: it
// asks the upstream first, with its own (missing) credentials. A host
// asking for a registry the allowlist denies is refused before any lease
// or peer is asked.
func TestFleetPeerOnlyAfterUpstreamProof(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	login := writeLoginConfigDir(t, map[string][2]string{pubHost: {"ci", "pw-for-ci"}})
	f := startFleet(t, fleetOptions{
		hosts:     2,
		rate:      2 << 20,
		registry:  harness.RegistryOptions{Username: "ci", Password: "pw-for-ci"},
		env:       map[int][]string{0: {"SPACELIFT_DOCKER_CONFIG_DIR=" + login}},
		allowlist: []string{pubHost},
	})
	img := f.reg.SeedImage(t, "team/private", "v1", harness.ImageSpec{Layers: 1, LayerSize: 3 << 20})
	layer := img.Layers[0]
	allowed, denied := f.proxies[0], f.proxies[1]

	holderDone := make(chan error, 1)
	go func() {
		d, err := getBlob(ctx, allowed.Proxy, "team/private", layer)
		if err == nil && d != layer {
			err = fmt.Errorf("digest %s", d)
		}
		holderDone <- err
	}()
	testwait.True(t, time.Minute, "the allowed host's fill is under way", func() bool {
		_, n := fillTemp(allowed.Proxy)
		return n > 0
	})
	_, err := getBlob(ctx, denied.Proxy, "team/private", layer)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a host without access to the repository: err %v, want the upstream's 401", err)
	}
	if err := <-holderDone; err != nil {
		t.Fatal(err)
	}
	if n := metric(t, denied.Proxy, "tollgate_fleet_leases_total", `result="held"`); n != 1 {
		t.Fatalf("the denied host did not find the lease held (%v): the test proved nothing", n)
	}
	if n := metric(t, denied.Proxy, "tollgate_fleet_peer_bytes_total"); n != 0 {
		t.Errorf("a host without upstream access read %v bytes from a peer", n)
	}
	if n := metric(t, allowed.Proxy, "tollgate_fleet_peer_served_bytes_total"); n != 0 {
		t.Errorf("the holder served %v bytes to a host without upstream access", n)
	}
	if cachedBlob(denied.Proxy, layer) {
		t.Error("the denied host cached the blob")
	}

	// The allowlist: refused at once, nothing asked of the fleet.
	before := fleetMetric(t, f, "tollgate_fleet_leases_total")
	resp, err := http.Get(denied.URL + "/v2/" + deniedHost + "/team/private/blobs/" + layer)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a registry off the allowlist: %s, want 403", resp.Status)
	}
	if after := fleetMetric(t, f, "tollgate_fleet_leases_total"); after != before {
		t.Errorf("a denied pull asked the lease engine (%v leases before, %v after)", before, after)
	}
}

// TestFleetCorruptPeerCopyNeverCommitted: the holder's copy is damaged on
// its disk while a follower streams it (and repaired before the holder
// commits, so only the follower sees it); the follower's pull fails, it
// commits nothing, and its retry does not ask that peer again.
func TestFleetCorruptPeerCopyNeverCommitted(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	f := startFleet(t, fleetOptions{hosts: 2, rate: 1 << 20})
	img := f.reg.SeedImage(t, "team/runner", "latest", harness.ImageSpec{Layers: 1, LayerSize: 4 << 20})
	layer := img.Layers[0]
	holder, follower := f.proxies[0], f.proxies[1]

	holderDone := make(chan error, 1)
	go func() {
		d, err := getBlob(ctx, holder.Proxy, "team/runner", layer)
		if err == nil && d != layer {
			err = fmt.Errorf("digest %s", d)
		}
		holderDone <- err
	}()
	var tmp string
	testwait.True(t, time.Minute, "the holder has written 64 KiB", func() bool {
		var n int64
		tmp, n = fillTemp(holder.Proxy)
		return n > 64<<10
	})
	// Damage bytes the holder has already written (and hashed): what it
	// serves from its file is not the blob until they are put back.
	fd, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	orig := make([]byte, 4096)
	if _, err := fd.ReadAt(orig, 1024); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt(make([]byte, len(orig)), 1024); err != nil {
		t.Fatal(err)
	}
	followerDone := make(chan error, 1)
	go func() {
		d, err := getBlob(ctx, follower.Proxy, "team/runner", layer)
		if err == nil {
			err = fmt.Errorf("the pull of a corrupt peer copy ended cleanly (%s)", d)
		} else {
			err = nil
		}
		followerDone <- err
	}()
	testwait.True(t, time.Minute, "the follower has read the damaged bytes from the holder", func() bool {
		return metric(t, follower.Proxy, "tollgate_fleet_peer_bytes_total") > 64<<10
	})
	if _, err := fd.WriteAt(orig, 1024); err != nil {
		t.Fatal(err)
	}
	if err := <-followerDone; err != nil {
		t.Fatal(err)
	}
	if err := <-holderDone; err != nil {
		t.Fatalf("holder: %v", err)
	}
	testwait.True(t, 30*time.Second, "the follower's fill ended", func() bool {
		_, n := fillTemp(follower.Proxy)
		return n == 0
	})
	if cachedBlob(follower.Proxy, layer) {
		t.Fatal("the follower committed a corrupt peer copy")
	}
	if n := metric(t, follower.Proxy, "tollgate_fleet_peer_errors_total", `reason="corrupt"`); n != 1 {
		t.Errorf("corrupt peer copies counted = %v, want 1", n)
	}
	// The retry does not go back to that peer: the shared tier (the
	// holder's verified upload) or the upstream.
	leases := metric(t, follower.Proxy, "tollgate_fleet_leases_total")
	if d, err := getBlob(ctx, follower.Proxy, "team/runner", layer); err != nil || d != layer {
		t.Fatalf("retry: %s, %v", d, err)
	}
	if !cachedBlob(follower.Proxy, layer) {
		t.Error("the retry did not commit")
	}
	if n := metric(t, follower.Proxy, "tollgate_fleet_leases_total"); n != leases {
		t.Errorf("the retry asked the fleet again (%v leases before, %v after)", leases, n)
	}
}

// TestFleetRefusesAnExposedSecret: `tollgate proxy` will not start with a
// fleet secret other users can read, and says what to do without showing
// the secret.
func TestFleetRefusesAnExposedSecret(t *testing.T) {
	t.Parallel()
	bin := harness.BuildBinaries(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "fleet.secret")
	if err := os.WriteFile(secret, []byte(fleetSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := harness.ProxyConfig{
		Allowlist:  []string{pubHost},
		CacheDir:   filepath.Join(dir, "cache"),
		ProxyExtra: fmt.Sprintf("  fleet:\n    listen: \"127.0.0.10:%d\"\n    secret_file: %q\n    lease: redis://127.0.0.1:1/0\n", loopbackPort(t, "127.0.0.10"), secret),
	}
	conf := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(conf, []byte(cfg.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := harness.Run(testCtx(t, time.Minute), nil, filepath.Join(bin, "tollgate"), "proxy", "--config", conf,
		"--listen", fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)))
	if err == nil {
		t.Fatal("the proxy started with a world-readable fleet secret")
	}
	out := err.Error() // with the process's stderr
	if !strings.Contains(out, "readable by other users") || !strings.Contains(out, "chmod 600") {
		t.Errorf("the refusal does not say what is wrong and what to do:\n%s", out)
	}
	if strings.Contains(out, fleetSecret) {
		t.Error("the refusal shows the secret")
	}
}
