package fleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
	"github.com/spacelift-io/tollgate/proxy/cache"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// testNode is a Node with its cache served on a peer listener of its own.
type testNode struct {
	*Node
	cache *cache.Cache
}

// With fill set, the node is its cache's Options.Fleet.
func startNode(t *testing.T, leaseURL, mode string, ttl time.Duration, fill ...bool) *testNode {
	t.Helper()
	return startNodeOn(t, leaseURL, "", nil, mode, ttl, fill...)
}

// startNodeOn is startNode with the leases in a shared tier's store
// (spec "shared", driver and params as proxy.shared names them).
func startNodeOn(t *testing.T, spec, driver string, params map[string]any, mode string, ttl time.Duration, fill ...bool) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	store, err := lease.Open(context.Background(), spec, Namespace(mode), driver, params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	secret, _ := NewSecret([]byte(testKey))
	n, err := New(Options{
		Advertise:    "http://" + ln.Addr().String(),
		Secret:       secret,
		Mode:         mode,
		Leases:       store,
		LeaseTTL:     ttl,
		LeaseTimeout: 500 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	copts := cache.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	if len(fill) > 0 && fill[0] {
		copts.Fleet = n
	}
	c, err := cache.Open(context.Background(), copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ln, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("peer listener: %v", err)
		}
	})
	return &testNode{Node: n, cache: c}
}

func TestClaimPicksOneFillerAndFollowersStreamFromIt(t *testing.T) {
	r := harness.StartRedis(t)
	a := startNode(t, r.URL, "private", 3*time.Second)
	b := startNode(t, r.URL, "private", 3*time.Second)
	pub := startNode(t, r.URL, "public", 3*time.Second)
	ctx := context.Background()
	u := newGatedUpstream(t, 1<<20, 200<<10)

	ca := a.Claim(ctx, testHost, testRepo, u.d)
	if ca.Peer != nil || ca.Done == nil {
		t.Fatal("the first host did not take the lease")
	}
	// A fills (held at 200 KiB); its lease outlives the TTL by renewal.
	ra, err := a.cache.Fetch(ctx, testHost, testRepo, u.d, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	time.Sleep(4 * time.Second) // past the 3s TTL: only renewal keeps the lease A's
	cb := b.Claim(ctx, testHost, testRepo, u.d)
	if cb.Peer == nil {
		t.Fatal("the lease was not held by the filler after its TTL: renewal failed")
	}
	// A host of the other mode is another fleet: it takes its own lease.
	if cp := pub.Claim(ctx, testHost, testRepo, u.d); cp.Peer != nil || cp.Done == nil {
		t.Fatal("a public-mode host was sent to a private-mode holder")
	} else {
		cp.Done(nil)
	}
	body, _, err := cb.Peer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(u.gate)
	got, err := io.ReadAll(body)
	_ = body.Close()
	if err != nil || !bytes.Equal(got, u.data) {
		t.Fatalf("streamed from the holder: %d bytes, err %v", len(got), err)
	}
	cb.Done(nil)
	if g := u.gets.Load(); g != 1 {
		t.Fatalf("upstream GETs = %d, want 1", g)
	}
	ca.Done(nil) // released: the next claim takes it
	if c := b.Claim(ctx, testHost, testRepo, u.d); c.Peer != nil || c.Done == nil {
		t.Fatal("lease not released")
	} else {
		c.Done(nil)
	}
	if got := testutil.ToFloat64(a.metrics.leases.WithLabelValues(leaseTaken)); got != 1 {
		t.Errorf("A leases taken = %v", got)
	}
	if got := testutil.ToFloat64(b.metrics.leases.WithLabelValues(leaseHeld)); got != 1 {
		t.Errorf("B leases held = %v", got)
	}
	if got := testutil.ToFloat64(a.metrics.leases.WithLabelValues(leaseLost)) + testutil.ToFloat64(a.metrics.leases.WithLabelValues(leaseExpired)); got != 0 {
		t.Errorf("A lost or expired = %v", got)
	}
}

func TestClaimSkipsTheFleetWhenTheLeaseEngineIsDown(t *testing.T) {
	r := harness.StartRedis(t)
	a := startNode(t, r.URL, "private", 3*time.Second)
	r.Stop()
	u := newGatedUpstream(t, 1024, -1)
	start := time.Now()
	c := a.Claim(context.Background(), testHost, testRepo, u.d)
	if c.Peer != nil || c.Done != nil {
		t.Fatal("a claim without a lease engine is not empty")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("claim took %s with the engine down", el)
	}
	if got := testutil.ToFloat64(a.metrics.leases.WithLabelValues(leaseError)); got != 1 {
		t.Errorf("lease errors = %v", got)
	}
}

func TestCorruptPeerCopyIsNotAskedAgain(t *testing.T) {
	r := harness.StartRedis(t)
	a := startNode(t, r.URL, "private", 3*time.Second)
	b := startNode(t, r.URL, "private", 3*time.Second)
	u := newGatedUpstream(t, 1024, -1)
	ctx := context.Background()
	ca := a.Claim(ctx, testHost, testRepo, u.d)
	defer ca.Done(nil)
	cb := b.Claim(ctx, testHost, testRepo, u.d)
	if cb.Peer == nil {
		t.Fatal("not held")
	}
	cb.Done(cache.ErrDigestMismatch)
	if c := b.Claim(ctx, testHost, testRepo, u.d); c.Peer != nil || c.Done != nil {
		t.Fatal("a digest whose peer copy did not verify was claimed from the fleet again")
	}
	if got := testutil.ToFloat64(b.metrics.peerErrors.WithLabelValues("corrupt")); got != 1 {
		t.Errorf("corrupt = %v", got)
	}
}

// TestFillStreamsFromTheHolderAndGoesOnFromUpstream: through the caches, a
// follower streams from the holder's fill; when the holder's stream breaks
// off mid-way, the follower goes on from upstream at the same offset and
// commits the verified blob.
func TestFillStreamsFromTheHolderAndGoesOnFromUpstream(t *testing.T) {
	t.Run("ranged", func(t *testing.T) { testFillGoesOnFromUpstream(t, true) })
	t.Run("whole", func(t *testing.T) { testFillGoesOnFromUpstream(t, false) })
}

// testFillGoesOnFromUpstream: with an upstream that takes ranges
// (Upstream.OpenFrom) the follower downloads only the bytes the peer did
// not send; without, it downloads the whole blob again and skips them.
func testFillGoesOnFromUpstream(t *testing.T, ranged bool) {
	r := harness.StartRedis(t)
	a := startNode(t, r.URL, "private", 3*time.Second, true)
	b := startNode(t, r.URL, "private", 3*time.Second, true)
	ctx := context.Background()
	u := newGatedUpstream(t, 1<<20, 200<<10)

	ra, err := a.cache.Fetch(ctx, testHost, testRepo, u.d, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	var checks atomic.Int64
	up := u.open()
	if ranged {
		up = u.openRanged()
	}
	check := up.Check
	up.Check = func(ctx context.Context) error { checks.Add(1); return check(ctx) }
	rb, err := b.cache.Fetch(ctx, testHost, "other/repo", u.d, -1, up)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	first := make([]byte, 200<<10-1)
	if _, err := io.ReadFull(rb, first); err != nil {
		t.Fatal(err)
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("upstream checks before reading from the peer = %d, want 1", n)
	}
	if got := testutil.ToFloat64(b.metrics.peerBytes); got < float64(len(first)) {
		t.Fatalf("the follower read %v bytes from the peer, want at least %d", got, len(first))
	}
	// The holder's upstream connection dies: its fill fails, its peer
	// stream breaks off; the follower goes on from upstream.
	u.srv.CloseClientConnections()
	testwait.True(t, 10*time.Second, "the follower went upstream", func() bool { return u.gets.Load() == 2 })
	close(u.gate)
	rest, err := io.ReadAll(rb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(first, rest...), u.data) {
		t.Fatal("content differs")
	}
	testwait.True(t, 10*time.Second, "the follower committed", func() bool { return b.cache.Has(testHost, "other/repo", u.d) })
	if got := testutil.ToFloat64(b.metrics.peerErrors.WithLabelValues("broken")); got != 1 {
		t.Errorf("broken peer streams = %v, want 1", got)
	}
	if got := b.cache.Stats().BytesFromUpstream; got != int64(len(u.data))-int64(200<<10) {
		t.Errorf("the follower counted %d bytes from upstream, want the %d after the break", got, len(u.data)-200<<10)
	}
	want := []string(nil)
	if ranged {
		want = []string{fmt.Sprintf("bytes=%d-", 200<<10)}
	}
	if got := u.rangeHeaders(); !slices.Equal(got, want) {
		t.Errorf("ranged GETs upstream %q, want %q", got, want)
	}
}

// TestClaimOnS3Leases: the same single flight with the leases in an S3
// bucket (SeaweedFS, conditional writes), as lease: shared does on AWS.
func TestClaimOnS3Leases(t *testing.T) {
	o := harness.StartSeaweedFS(t)
	params := o.SharedParameters("/tollgate")
	a := startNodeOn(t, "shared", "s3", params, "private", 3*time.Second, true)
	b := startNodeOn(t, "shared", "s3", params, "private", 3*time.Second, true)
	ctx := context.Background()
	u := newGatedUpstream(t, 1<<20, 200<<10)
	ra, err := a.cache.Fetch(ctx, testHost, testRepo, u.d, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := b.cache.Fetch(ctx, testHost, testRepo, u.d, -1, u.open())
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	close(u.gate)
	for name, r := range map[string]io.Reader{"holder": ra, "follower": rb} {
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, u.data) {
			t.Fatalf("%s: %d bytes, err %v", name, len(got), err)
		}
	}
	if g := u.gets.Load(); g != 1 {
		t.Fatalf("upstream GETs = %d, want 1", g)
	}
	if got := testutil.ToFloat64(b.metrics.peerBytes); got != float64(len(u.data)) {
		t.Fatalf("the follower read %v bytes from the holder, want %d", got, len(u.data))
	}
	if got := testutil.ToFloat64(a.metrics.leases.WithLabelValues(leaseTaken)) + testutil.ToFloat64(b.metrics.leases.WithLabelValues(leaseHeld)); got != 2 {
		t.Fatalf("taken + held = %v, want 2", got)
	}
	// Released after the fill (no shared tier here: right after the
	// commit): the next claim takes it.
	testwait.True(t, 10*time.Second, "the holder released the lease", func() bool {
		c := b.Claim(ctx, testHost, testRepo, u.d)
		if c.Done != nil {
			c.Done(nil)
		}
		return c.Peer == nil && c.Done != nil
	})
}
