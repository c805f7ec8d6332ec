package lease_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

func openRedis(t *testing.T, url, ns string) lease.Store {
	t.Helper()
	s, err := lease.Open(context.Background(), url, ns, "", nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	return s
}

func TestRedis(t *testing.T) {
	r := harness.StartRedis(t)
	testStore(t, engine{
		open: func(t *testing.T, ns string) lease.Store { return openRedis(t, r.URL, ns) },
		ttl:  time.Second,
	})
}

func TestRedisUnreachable(t *testing.T) {
	testUnreachable(t, func(t *testing.T, addr string) lease.Store {
		return openRedis(t, "redis://"+addr+"/0", "down")
	})
}

// TestRedisStopped: the engine going away under a holder makes Renew fail
// with an engine error (not ErrLost: nobody took it), and a restarted
// empty Redis hands the lease out again.
func TestRedisStopped(t *testing.T) {
	r := harness.StartRedis(t)
	s := openRedis(t, r.URL, "stopped")
	defer s.Close()
	ctx := ctxFor(t, 30*time.Second)
	l, err := s.Acquire(ctx, "sha256:stopped", holderURL(1), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r.Stop()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := s.Renew(short, l, time.Minute); err == nil || errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew with Redis stopped: %v, want an engine error", err)
	}
}

func TestRedisURLs(t *testing.T) {
	for _, spec := range []string{"redis://:s3cret@127.0.0.1:6379/notanumber", "redis://u:s3cret@[::1/0"} {
		_, err := lease.Open(context.Background(), spec, "ns", "", nil)
		if err == nil {
			t.Errorf("Open(%q): no error", spec)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): the error shows the password: %v", spec, err)
		}
	}
	if _, err := lease.Open(context.Background(), "memcached://x", "ns", "", nil); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("unknown scheme: %v", err)
	}
	if _, err := lease.Open(context.Background(), "redis://127.0.0.1:6379/0", "", "", nil); err == nil {
		t.Error("empty namespace accepted")
	}
}

// The proxy logs the lease spec through Redact at start-up.
func TestRedactHidesPasswords(t *testing.T) {
	for spec, want := range map[string]string{
		"shared":                               "shared",
		"redis://127.0.0.1:6379/0":             "redis://127.0.0.1:6379/0",
		"redis://user:s3cret@127.0.0.1:6379/0": "redis://REDACTED@127.0.0.1:6379/0",
		"rediss://:s3cret@127.0.0.1:6380/1":    "rediss://REDACTED@127.0.0.1:6380/1",
		"redis://u:s3cret@[::1/0":              "(unparsable URL)",
	} {
		if got := lease.Redact(spec); got != want {
			t.Errorf("Redact(%q) = %q, want %q", spec, got, want)
		}
	}
}
