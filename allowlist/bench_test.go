package allowlist

import (
	"fmt"
	"testing"

	"github.com/spacelift-io/tollgate/allowlist/name"
	"github.com/spacelift-io/tollgate/allowlist/pattern"
)

// benchPolicy is a 50-pattern policy: the 11 defaults plus 39 operator
// patterns of every kind (exact hosts, ports, wildcards, repository
// prefixes).
func benchPolicy(b *testing.B) *Policy {
	pats := Default().Patterns()
	for i := 0; len(pats) < 50; i++ {
		switch i % 4 {
		case 0:
			pats = append(pats, fmt.Sprintf("registry%d.example.com", i))
		case 1:
			pats = append(pats, fmt.Sprintf("*.team%d.example.org", i))
		case 2:
			pats = append(pats, fmt.Sprintf("ghcr.io/org%d/*", i))
		case 3:
			pats = append(pats, fmt.Sprintf("10.0.0.%d:5000", i))
		}
	}
	p, err := New(pats)
	if err != nil {
		b.Fatal(err)
	}
	if n := len(p.Patterns()); n != 50 {
		b.Fatalf("%d patterns", n)
	}
	return p
}

var benchRefs = []string{
	"alpine:3.20", // allowed by an early pattern
	"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:v1",
	"ghcr.io/org/app@sha256:" + hex64,
	"x.team37.example.org/app:1",      // allowed by a late pattern
	"evil.example.net/org/app:latest", // denied: every pattern tried
	"10.0.0.3:5001/app",               // denied with the port hint
}

// BenchmarkCheck measures full verdicts (parse, normalise, match, reason)
// against a 50-pattern policy.
func BenchmarkCheck(b *testing.B) {
	p := benchPolicy(b)
	for _, ref := range benchRefs {
		b.Run(ref[:min(len(ref), 24)], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Check(ref)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
		})
	}
}

// BenchmarkCheckMix is the mixed workload over all benchRefs, in parallel
// as the proxy serves it.
func BenchmarkCheckMix(b *testing.B) {
	p := benchPolicy(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_ = p.Check(benchRefs[i%len(benchRefs)])
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
}

// BenchmarkCheckRepository parses host and repository, then decides.
func BenchmarkCheckRepository(b *testing.B) {
	p := benchPolicy(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = p.CheckRepository("x.team37.example.org", "team/app")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
}

// BenchmarkDecide is the proxy's per-request call: the name its routing
// made, decided.
func BenchmarkDecide(b *testing.B) {
	p := benchPolicy(b)
	r, err := name.New("x.team37.example.org", "team/app")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Decide(r)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
}

// BenchmarkMatchOnly isolates pattern matching from parsing: a denied host,
// so all 50 patterns are tried (and the reason is built).
func BenchmarkMatchOnly(b *testing.B) {
	p := benchPolicy(b)
	h, err := pattern.ParseHost("evil.example.net")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.decide(h, "org/app", "evil.example.net/org/app:latest")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verdicts/s")
}
