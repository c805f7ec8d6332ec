package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

// BenchmarkWarmGetProcess runs the built helper as docker does, one process
// per get, against a warm disk cache, and reports the median wall time of a
// whole process (ms/get-median) besides the mean (ns/op). Fake AWS endpoints
// make sure a warm get makes no call at all.
func BenchmarkWarmGetProcess(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "docker-credential-tollgate")
	if out, err := exec.Command("go", "build", "-o", dir, "../...").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	s := fakeaws.Start(b, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", "arn:aws:iam::111111111111:role/ci-worker")
	home := b.TempDir()
	env := s.Environ("HOME="+home, "TOLLGATE_CACHE_DIR="+filepath.Join(home, "cache"))
	var clean []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TOLLGATE_CONFIG=") && !strings.HasPrefix(kv, "SPACELIFT_DOCKER_CONFIG_DIR=") {
			clean = append(clean, kv)
		}
	}
	const host = "111111111111.dkr.ecr.us-west-2.amazonaws.com"
	get := func() {
		cmd := exec.Command(bin, "get")
		cmd.Env = clean
		cmd.Stdin = strings.NewReader(host)
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), `"Username":"AWS"`) {
			b.Fatalf("get: %v %s", err, out.String())
		}
	}
	get() // warm the cache
	s.ResetCalls()
	var times []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		get()
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	if n := s.Calls(""); n != 0 {
		b.Fatalf("warm gets made %d AWS calls: %v", n, s.CallCounts())
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms/get-median")
}
