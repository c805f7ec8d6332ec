package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
	"github.com/spacelift-io/tollgate/proxy/cache"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// servingNode is a Node serving its peer listener until stop.
type servingNode struct {
	*Node
	url  string
	stop func() error // ends Serve and returns its error
}

func serveNode(t *testing.T, leases lease.Store, memberTTL time.Duration) *servingNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := NewSecret([]byte(testKey))
	url := "http://" + ln.Addr().String()
	n, err := New(Options{
		Advertise:    url,
		Secret:       secret,
		Mode:         "private",
		Leases:       leases,
		LeaseTimeout: 500 * time.Millisecond,
		MemberTTL:    memberTTL,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(context.Background(), cache.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ln, c) }()
	var stopped bool
	var serveErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			serveErr = <-done
		}
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return &servingNode{Node: n, url: url, stop: stop}
}

func openFileLeases(t *testing.T, root string) lease.Store {
	t.Helper()
	s, err := lease.Open(context.Background(), "shared", Namespace("private"), "filesystem", map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestMemberRecordLivesWhileServing: a serving node's member record
// appears in the lease engine, outlives its TTL by renewal, names one URL
// however many records a host has, and is gone once Serve returns.
func TestMemberRecordLivesWhileServing(t *testing.T) {
	root := t.TempDir()
	observer := openFileLeases(t, root) // another host's view of the engine
	const ttl = 3 * time.Second
	n := serveNode(t, openFileLeases(t, root), ttl)
	ctx := context.Background()
	members := func() ([]string, error) {
		urls, _, err := Members(ctx, observer, 64)
		return urls, err
	}
	testwait.Eventually(t, 10*time.Second, func() error {
		urls, err := members()
		if err != nil {
			return err
		}
		if fmt.Sprint(urls) != fmt.Sprint([]string{n.url}) {
			return fmt.Errorf("members %v, want [%s]", urls, n.url)
		}
		return nil
	})
	first, err := observer.List(ctx, MemberPrefix, 10)
	if err != nil || len(first) != 1 {
		t.Fatalf("member records: %v, %v; want one", first, err)
	}
	// Past its TTL, only renewal keeps it.
	testwait.True(t, 4*ttl, "the record was renewed past its first expiry", func() bool {
		return time.Now().After(first[0].Expires.Add(time.Second))
	})
	if urls, err := members(); err != nil || fmt.Sprint(urls) != fmt.Sprint([]string{n.url}) {
		t.Fatalf("after the record's first TTL: members %v, %v; want [%s] (not renewed?)", urls, err, n.url)
	}
	if ok := testutil.ToFloat64(n.metrics.memberWrites.WithLabelValues(memberOK)); ok < 3 {
		t.Errorf("member writes ok = %v, want the first and at least two renewals", ok)
	}
	// A record left by this host's previous run names the same URL.
	if _, err := observer.Acquire(ctx, MemberPrefix+"previous-run", n.url, time.Minute); err != nil {
		t.Fatal(err)
	}
	if urls, err := members(); err != nil || len(urls) != 1 {
		t.Errorf("with two records of one host: members %v, %v; want its URL once", urls, err)
	}
	if err := n.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	left, err := observer.List(ctx, MemberPrefix, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		if l.Key != MemberPrefix+"previous-run" {
			t.Errorf("after Serve returned, member record %s (%s) is still there", l.Key, l.Holder)
		}
	}
	if errs := testutil.ToFloat64(n.metrics.memberWrites.WithLabelValues(memberError)); errs != 0 {
		t.Errorf("member write errors = %v", errs)
	}
}

// TestMemberRecordEngineDownKeepsServing: when the lease engine goes away,
// writing the record fails and is counted, and the peer listener goes on
// answering.
func TestMemberRecordEngineDownKeepsServing(t *testing.T) {
	r := harness.StartRedis(t)
	store, err := lease.Open(context.Background(), r.URL, Namespace("private"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	n := serveNode(t, store, 3*time.Second)
	ctx := context.Background()
	testwait.Eventually(t, 10*time.Second, func() error {
		urls, _, err := Members(ctx, store, 8)
		if err != nil || len(urls) != 1 {
			return fmt.Errorf("members %v, %v", urls, err)
		}
		return nil
	})
	r.Stop()
	testwait.True(t, 15*time.Second, "a failed member write was counted", func() bool {
		return testutil.ToFloat64(n.metrics.memberWrites.WithLabelValues(memberError)) >= 1
	})
	secret, _ := NewSecret([]byte(testKey))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := Ping(pctx, secret, "private", n.url); err != nil {
		t.Errorf("ping with the lease engine down: %v, want the peer listener still serving", err)
	}
	start := time.Now()
	if err := n.stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Serve took %s to end with the engine down", took)
	}
}
