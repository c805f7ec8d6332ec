package ecr

import (
	"context"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

// BenchmarkWarmTokenNewEngine is the helper's warm path in process: a new
// engine (as in a new process) answering from the disk cache.
func BenchmarkWarmTokenNewEngine(b *testing.B) {
	s := fakeaws.Start(b, fakeaws.Options{})
	benchEnv(b, s)
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
	benchEnv(b, s)
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

func benchEnv(b *testing.B, s *fakeaws.Server) {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	b.Setenv("AWS_PROFILE", "")
	b.Setenv("AWS_ACCESS_KEY_ID", "")
	b.Setenv("HOME", b.TempDir())
}
