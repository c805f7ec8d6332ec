package main

import (
	"strings"
	"testing"
)

// Two rounds of each proxy group for an old and a new tollgate, as go test
// prints them (GOMAXPROCS and round suffixes), a log line in between, and
// bench/ecrhelper -benchfmt lines. new misses every target; old meets them.
const sample = `goos: linux
BenchmarkProxyPull/cold/direct-2          1  8600000000 ns/op  124.8 MB/s
BenchmarkProxyPull/cold/tollgate-old-2    1  8700000000 ns/op  123.0 MB/s  1.000 upstream-GETs/blob
BenchmarkProxyPull/cold/tollgate-new-2    1  9300000000 ns/op  115.0 MB/s  1.000 upstream-GETs/blob
BenchmarkProxyPull/cold/tollgate-new#01-2 1  9100000000 ns/op  115.0 MB/s  1.000 upstream-GETs/blob
BenchmarkProxyPull/cold/tollgate-old#01-2 1  8500000000 ns/op  123.0 MB/s  1.000 upstream-GETs/blob
BenchmarkProxyPull/cold/direct#01-2       1  8600000000 ns/op  124.8 MB/s
    proxy_bench_test.go:1: some log line 1 2 3
BenchmarkProxyPull/warm/sendfile-2        1   800000000 ns/op  1342 MB/s  1600 client-CPU-ms/GiB
BenchmarkProxyPull/warm/write-2           1   700000000 ns/op  1342 MB/s  1700 client-CPU-ms/GiB
BenchmarkProxyPull/warm/tollgate-old-2    1   750000000 ns/op  1342 MB/s  1500 client-CPU-ms/GiB  140.0 server-CPU-ms/GiB
BenchmarkProxyPull/warm/tollgate-new-2    1   800000000 ns/op  1342 MB/s  1500 client-CPU-ms/GiB  160.0 server-CPU-ms/GiB
BenchmarkProxyPull/warm/distribution-2    1  1000000000 ns/op  1342 MB/s  1300 client-CPU-ms/GiB  650.0 server-CPU-ms/GiB
BenchmarkProxyPull/warm-nohash/write-2    1   300000000 ns/op  3342 MB/s  900 client-CPU-ms/GiB
BenchmarkProxyPull/cold-20clients/tollgate-old-2  1 17000000000 ns/op  1300 MB/s  34.70 peak-RSS-MiB  1.000 upstream-GETs/blob
BenchmarkProxyPull/cold-20clients/tollgate-new-2  1 17000000000 ns/op  1300 MB/s  120.5 peak-RSS-MiB  1.111 upstream-GETs/blob
BenchmarkProxyPull/cold-20clients/tollgate-new#01-2  1 17000000000 ns/op  1300 MB/s  40.5 peak-RSS-MiB  1.000 upstream-GETs/blob
PASS

BenchmarkHelperWarmGet/instance-role/old 300 2.45 median-ms 4.10 p90-ms 1.70 min-ms
BenchmarkHelperWarmGet/instance-role/new 300 2.60 median-ms 4.20 p90-ms 1.80 min-ms
BenchmarkHelperWarmGet/static-keys/old 300 2.50 median-ms 4.10 p90-ms 1.70 min-ms
BenchmarkHelperWarmGet/static-keys/new 300 2.40 median-ms 4.20 p90-ms 1.80 min-ms
`

func renderSample(t *testing.T, in string) map[string][]string {
	t.Helper()
	var rs results
	if err := rs.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := render(&out, &rs); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	rows := map[string][]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) > 1 {
			rows[cells[0]] = cells[1:]
		}
	}
	return rows
}

func TestTargetsTable(t *testing.T) {
	rows := renderSample(t, sample)
	want := map[string][]string{
		"target": {"old", "new"},
		"cold pull over the link, vs direct (within 5 %)": {
			"+0.0 % (8.600 s vs 8.600 s, n=2/2) — met",
			"+7.0 % (9.200 s vs 8.600 s, n=2/2) — **NOT met**"},
		"warm pull, verifying client, vs the faster bare yardstick (within 1.10x)": {
			"1.07x (0.750 s vs write 0.700 s, n=1) — met",
			"1.14x (0.800 s vs write 0.700 s, n=1) — **NOT met**"},
		"proxy CPU per warm GiB, verifying client (reported beside distribution's)": {
			"140 ms (distribution 2.8: 650 ms)", "160 ms (distribution 2.8: 650 ms)"},
		"20 concurrent cold clients: upstream GETs per blob, worst run (1)": {
			"1.00 (n=1) — met", "1.11 (n=2) — **NOT met**"},
		"20 concurrent cold clients: peak RSS of the proxy, worst run (< 100 MiB)": {
			"34.7 MiB (n=1) — met", "120.5 MiB (n=2) — **NOT met**"},
		"helper warm `get`, instance-role, median (no slower than old)": {
			"2.45 ms", "2.60 ms (1.061x old) — **NOT met**"},
		"helper warm `get`, static-keys, median (no slower than old)": {
			"2.50 ms", "2.40 ms (0.960x old) — met"},
		"ProxyPull/warm-nohash/write": {"1", "0.300 s", "3342 MB/s, 900 client-CPU-ms/GiB"},
	}
	for target, cells := range want {
		if got := rows[target]; strings.Join(got, " | ") != strings.Join(cells, " | ") {
			t.Errorf("row %q:\n got  %q\n want %q", target, got, cells)
		}
	}
}

// A run without the helper or the concurrent group says so instead of
// inventing a verdict.
func TestMissingFiguresAreNotRun(t *testing.T) {
	in := "BenchmarkProxyPull/cold/direct-2 1 100 ns/op\nBenchmarkProxyPull/cold/tollgate-2 1 104 ns/op 1.000 upstream-GETs/blob\n"
	rows := renderSample(t, in)
	if got := rows["cold pull over the link, vs direct (within 5 %)"]; len(got) != 1 || got[0] != "+4.0 % (0.000 s vs 0.000 s, n=1/1) — met" {
		t.Errorf("cold row: %q", got)
	}
	for _, target := range []string{
		"warm pull, verifying client, vs the faster bare yardstick (within 1.10x)",
		"20 concurrent cold clients: upstream GETs per blob, worst run (1)",
	} {
		if got := rows[target]; len(got) != 1 || got[0] != "not run" {
			t.Errorf("row %q: %q, want not run", target, got)
		}
	}
}

func TestNothingToTabulate(t *testing.T) {
	var rs results
	if err := rs.read(strings.NewReader("PASS\nok  \tpkg\t1.0s\n")); err != nil {
		t.Fatal(err)
	}
	if err := render(&strings.Builder{}, &rs); err == nil {
		t.Fatal("render of no results: no error")
	}
}
