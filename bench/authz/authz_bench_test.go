package authzbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

// samples is how many interleaved pairs of API calls to time
// (TOLLGATE_BENCH_N, default 2000); the CLI loop takes a tenth of them.
func samples() int {
	if n, err := strconv.Atoi(os.Getenv("TOLLGATE_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 2000
}

// BenchmarkDaemonInspect reports the median time of `docker inspect` (its
// API call, and the whole CLI process) against a daemon with the plugin
// and one without, taken in alternating turns, and the difference.
//
//	go test -run '^$' -bench DaemonInspect -benchtime 1x ./bench/authz/
func BenchmarkDaemonInspect(b *testing.B) {
	ctx := context.Background()
	harness.RequireRoot(b, "dockerd authorization plugins")
	bin := harness.BuildBinaries(b)
	reg := harness.StartRegistry(b, harness.RegistryOptions{})
	img := reg.SeedImage(b, "bench/app", "v1", harness.ImageSpec{Layers: 1, LayerSize: 1024})

	var rb [6]byte
	rand.Read(rb[:])
	name := "tgbench-" + hex.EncodeToString(rb[:])
	sock := filepath.Join("/run/docker/plugins", name+".sock")
	os.MkdirAll(filepath.Dir(sock), 0o755)
	b.Cleanup(func() { os.Remove(sock) })
	dir := b.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("allowlist:\n  - %q\nlog:\n  level: warn\n", reg.Host)), 0o600)
	plugin := harness.StartProcess(b, "tollgate-authz", dir, exec.Command(filepath.Join(bin, "tollgate"), "authz", "--config", cfg, "--socket", sock))
	testwait.Eventually(b, 20*time.Second, func() error {
		if plugin.Exited() {
			b.Fatalf("tollgate authz exited: %v", plugin.Err())
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return err
		}
		return c.Close()
	})

	ctrd := harness.StartContainerd(b)
	with := harness.StartDocker(b, harness.DockerOptions{Containerd: ctrd, AuthorizationPlugins: []string{name}})
	without := harness.StartDocker(b, harness.DockerOptions{Containerd: ctrd})
	for _, d := range []*harness.Docker{with, without} {
		if _, err := d.Run(ctx, "pull", img.Ref()); err != nil {
			b.Fatal(err)
		}
	}
	n := samples()
	api := func(d *harness.Docker) func() error {
		c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", strings.TrimPrefix(d.Host, "unix://"))
		}}}
		url := "http://docker/v1.41/images/" + img.Ref() + "/json"
		return func() error {
			resp, err := c.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			return nil
		}
	}
	cli := func(d *harness.Docker) func() error {
		return func() error { _, err := d.Run(ctx, "inspect", "--format", "{{.Id}}", img.Ref()); return err }
	}
	b.ResetTimer()
	report(b, "api", n, api(with), api(without))
	report(b, "cli", max(n/10, 20), cli(with), cli(without))
}

// report times n interleaved pairs (the order within a pair alternates)
// and reports medians and the 90th percentiles in microseconds.
func report(b *testing.B, what string, n int, with, without func() error) {
	for range 20 { // warm both: connections, the daemon's plugin client
		if err := with(); err != nil {
			b.Fatal(err)
		}
		if err := without(); err != nil {
			b.Fatal(err)
		}
	}
	tw, to := make([]float64, 0, n), make([]float64, 0, n)
	timed := func(f func() error) float64 {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		return float64(time.Since(start).Nanoseconds()) / 1e3
	}
	for i := range n {
		if i%2 == 0 {
			tw = append(tw, timed(with))
			to = append(to, timed(without))
		} else {
			to = append(to, timed(without))
			tw = append(tw, timed(with))
		}
	}
	mw, mo := pct(tw, 50), pct(to, 50)
	b.ReportMetric(mw, what+"-median-with-µs")
	b.ReportMetric(mo, what+"-median-without-µs")
	b.ReportMetric(mw-mo, what+"-added-median-µs")
	b.ReportMetric(pct(tw, 90)-pct(to, 90), what+"-added-p90-µs")
	b.Logf("%s: %d pairs: median %.0f µs with the plugin, %.0f µs without: +%.0f µs (p90 %.0f vs %.0f µs)", what, n, mw, mo, mw-mo, pct(tw, 90), pct(to, 90))
}

func pct(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
