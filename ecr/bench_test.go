package ecr

import (
	"context"
	"testing"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

// BenchmarkWarmTokenNewEngine is the helper's warm path in process: a new
// engine (as in a new process) answering from the disk cache.
func BenchmarkWarmTokenNewEngine(b *testing.B) {
	s := fakeaws.Start(b, fakeaws.Options{})
	s.UseEnv(b)
	s.SetInstanceRole("ci-worker", roleARN)
	dir := b.TempDir()
	e, err := NewEngine(Options{CacheDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Token(context.Background(), host1); err != nil {
		b.Fatal(err)
	}
	s.ResetCalls()
	b.ResetTimer()
	for b.Loop() {
		e, _ := NewEngine(Options{CacheDir: dir})
		if _, err := e.Token(context.Background(), host1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := s.Calls(""); n != 0 {
		b.Fatalf("warm path made %d calls", n)
	}
}

// BenchmarkWarmTokenSameEngine is the proxy's path: one long-lived engine.
func BenchmarkWarmTokenSameEngine(b *testing.B) {
	s := fakeaws.Start(b, fakeaws.Options{})
	s.UseEnv(b)
	s.SetInstanceRole("ci-worker", roleARN)
	e, err := NewEngine(Options{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Token(context.Background(), host1); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.Token(context.Background(), host1); err != nil {
			b.Fatal(err)
		}
	}
}
