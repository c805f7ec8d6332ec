package lease_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/internal/testwait"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// engine opens a new Store (a new client, as on another host) on one
// running lease engine.
type engine struct {
	open func(t *testing.T, namespace string) lease.Store
	// ttl is the shortest lease the engine's clock resolves well.
	ttl time.Duration
}

func (e engine) host(t *testing.T, ns string) lease.Store {
	t.Helper()
	s := e.open(t, ns)
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func holderURL(i int) string { return fmt.Sprintf("http://10.0.0.%d:5001", i) }

// testStore runs the behaviour every engine must have.
func testStore(t *testing.T, e engine) {
	t.Run("OneWinnerPerKey", func(t *testing.T) { testOneWinner(t, e) })
	t.Run("ExpiredLeaseIsTakenOver", func(t *testing.T) { testTakeover(t, e) })
	t.Run("OneWinnerPerTakeover", func(t *testing.T) { testConcurrentTakeover(t, e) })
	t.Run("LateRenewRacesTakeover", func(t *testing.T) { testLateRenew(t, e) })
	t.Run("RenewKeepsIt", func(t *testing.T) { testRenew(t, e) })
	t.Run("ReleaseFreesIt", func(t *testing.T) { testRelease(t, e) })
	t.Run("NamespacesAreSeparate", func(t *testing.T) { testNamespaces(t, e) })
	t.Run("InvalidInput", func(t *testing.T) { testInvalid(t, e) })
	t.Run("ListLiveLeasesByPrefix", func(t *testing.T) { testList(t, e) })
}

// keysOf returns the keys of ls, and fails the test unless each names the
// holder want says.
func keysOf(t *testing.T, ls []lease.Lease, want map[string]string) []string {
	t.Helper()
	var keys []string
	for _, l := range ls {
		keys = append(keys, l.Key)
		if w, ok := want[l.Key]; ok && l.Holder != w {
			t.Errorf("listed %s held by %q, want %q", l.Key, l.Holder, w)
		}
		if until := time.Until(l.Expires); until <= 0 || until > 2*time.Minute {
			t.Errorf("listed %s expires in %s", l.Key, until)
		}
	}
	return keys
}

// testList: List returns the live leases under a prefix, sorted, at most
// max of them; released and expired ones, other prefixes and other
// namespaces (nested ones too) are left out; what it returns cannot be
// renewed.
func testList(t *testing.T, e engine) {
	a, nested, other := e.host(t, "list"), e.host(t, "list/nested"), e.host(t, "list-other")
	ctx := ctxFor(t, 60*time.Second)
	holders := map[string]string{"member-1": holderURL(1), "member-2": holderURL(2), "sha256:blob": holderURL(3)}
	for k, h := range holders {
		if _, err := a.Acquire(ctx, k, h, time.Minute); err != nil {
			t.Fatalf("acquire %s: %v", k, err)
		}
	}
	released, err := a.Acquire(ctx, "member-released", holderURL(4), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, released); err != nil {
		t.Fatal(err)
	}
	short, err := a.Acquire(ctx, "member-short", holderURL(5), e.ttl)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []lease.Store{nested, other} {
		if _, err := s.Acquire(ctx, "member-elsewhere", holderURL(6), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.List(ctx, "member-", 100)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	// The short lease may have expired already on a slow machine; it must
	// be there only while it lives.
	keys := keysOf(t, got, holders)
	if want := "[member-1 member-2 member-short]"; fmt.Sprint(keys) != want && !(time.Now().After(short.Expires) && fmt.Sprint(keys) == "[member-1 member-2]") {
		t.Errorf("List(member-) = %v, want %s", keys, want)
	}
	testwait.Eventually(t, e.ttl+10*time.Second, func() error {
		got, err := a.List(ctx, "member-", 100)
		if err != nil {
			return err
		}
		if keys := keysOf(t, got, holders); fmt.Sprint(keys) != "[member-1 member-2]" {
			return fmt.Errorf("List(member-) = %v, want the expired member-short left out", keys)
		}
		return nil
	})
	if time.Now().Before(short.Expires) {
		t.Errorf("the short lease was left out before it expired")
	}
	all, err := a.List(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if keys := keysOf(t, all, holders); fmt.Sprint(keys) != "[member-1 member-2 sha256:blob]" {
		t.Errorf("List(\"\") = %v, want every live lease of the namespace and nothing of the nested one", keys)
	}
	one, err := a.List(ctx, "member-", 1)
	if err != nil || len(one) != 1 {
		t.Errorf("List(member-, 1) = %v, %v; want exactly one", one, err)
	}
	none, err := e.host(t, "list-empty").List(ctx, "member-", 10)
	if err != nil || len(none) != 0 {
		t.Errorf("List in an empty namespace = %v, %v; want none", none, err)
	}
	if _, err := a.Renew(ctx, got[0], time.Minute); err == nil || errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew of a listed lease: %v, want an error saying it is not ours", err)
	}
	for _, c := range []struct {
		prefix string
		max    int
	}{{"member/", 10}, {"*", 10}, {"member-", 0}} {
		if _, err := a.List(ctx, c.prefix, c.max); err == nil {
			t.Errorf("List(%q, %d): no error", c.prefix, c.max)
		}
	}
}

// testOneWinner: many hosts acquire the same key at the same moment, in
// many rounds at once; in each round exactly one wins and every other
// is told that one's URL.
func testOneWinner(t *testing.T, e engine) {
	const hosts, rounds = 6, 25
	stores := make([]lease.Store, hosts)
	for i := range stores {
		stores[i] = e.host(t, "race")
	}
	ctx := ctxFor(t, 60*time.Second)
	type result struct {
		host int
		l    lease.Lease
		err  error
	}
	results := make([][]result, rounds)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for r := 0; r < rounds; r++ {
		results[r] = make([]result, hosts)
		for h := 0; h < hosts; h++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				key := fmt.Sprintf("sha256:%064x", r)
				l, err := stores[h].Acquire(ctx, key, holderURL(h), time.Minute)
				results[r][h] = result{h, l, err}
			}()
		}
	}
	close(start)
	wg.Wait()
	for r, rs := range results {
		winners := 0
		winner := ""
		for _, res := range rs {
			switch {
			case res.err == nil:
				winners++
				winner = holderURL(res.host)
				if res.l.Holder != winner {
					t.Errorf("round %d: host %d won but the lease names %q", r, res.host, res.l.Holder)
				}
			case errors.Is(res.err, lease.ErrHeld):
			default:
				t.Errorf("round %d: host %d: %v", r, res.host, res.err)
			}
		}
		if winners != 1 {
			t.Errorf("round %d: %d hosts hold the lease, want exactly 1", r, winners)
			continue
		}
		for _, res := range rs {
			if errors.Is(res.err, lease.ErrHeld) && res.l.Holder != winner {
				t.Errorf("round %d: host %d was told the holder is %q, want %q", r, res.host, res.l.Holder, winner)
			}
		}
	}
}

// testTakeover: a holder that stops renewing (it died) loses the lease at
// its expiry, not before; another host takes it over; the old holder's
// Renew and Release then say ErrLost.
func testTakeover(t *testing.T, e engine) {
	a, b := e.host(t, "takeover"), e.host(t, "takeover")
	ctx := ctxFor(t, 60*time.Second)
	const key = "sha256:takeover"
	la, err := a.Acquire(ctx, key, holderURL(1), e.ttl)
	if err != nil {
		t.Fatalf("A acquire: %v", err)
	}
	if until := time.Until(la.Expires); until <= 0 || until > e.ttl {
		t.Errorf("A's lease expires in %s, want within (0, %s]", until, e.ttl)
	}
	theirs, err := b.Acquire(ctx, key, holderURL(2), e.ttl)
	if !errors.Is(err, lease.ErrHeld) || theirs.Holder != holderURL(1) {
		t.Fatalf("B acquire while A holds it: (%+v, %v), want A's lease and ErrHeld", theirs, err)
	}
	// What ErrHeld returns describes A's lease; it cannot be used to
	// renew or release it.
	if _, err := b.Renew(ctx, theirs, e.ttl); err == nil || errors.Is(err, lease.ErrLost) {
		t.Errorf("B renewing A's lease from ErrHeld: %v, want an error saying it is not B's", err)
	}
	if err := b.Release(ctx, theirs); err == nil || errors.Is(err, lease.ErrLost) {
		t.Errorf("B releasing A's lease from ErrHeld: %v, want an error saying it is not B's", err)
	}
	var lb lease.Lease
	testwait.Eventually(t, e.ttl+10*time.Second, func() error {
		l, err := b.Acquire(ctx, key, holderURL(2), e.ttl)
		if err != nil {
			return err
		}
		lb = l
		return nil
	})
	if now := time.Now(); now.Before(la.Expires) {
		t.Errorf("B took the lease over at %s, before A's expiry %s", now.Format(time.StampMilli), la.Expires.Format(time.StampMilli))
	}
	if lb.Holder != holderURL(2) {
		t.Errorf("B's lease names %q", lb.Holder)
	}
	if _, err := a.Renew(ctx, la, e.ttl); !errors.Is(err, lease.ErrLost) {
		t.Errorf("A renew after takeover: %v, want ErrLost", err)
	}
	if err := a.Release(ctx, la); !errors.Is(err, lease.ErrLost) {
		t.Errorf("A release after takeover: %v, want ErrLost", err)
	}
	// A's failed renew and release changed nothing: B still holds it.
	theirs, err = a.Acquire(ctx, key, holderURL(1), e.ttl)
	if !errors.Is(err, lease.ErrHeld) || theirs.Holder != holderURL(2) {
		t.Errorf("A acquire after B's takeover: (%+v, %v), want B's lease and ErrHeld", theirs, err)
	}
	if _, err := b.Renew(ctx, lb, e.ttl); err != nil {
		t.Errorf("B renew: %v", err)
	}
}

// testConcurrentTakeover: when a lease expires, many hosts try to take it
// over at the same moment, for several keys at once; exactly one of them
// gets each.
func testConcurrentTakeover(t *testing.T, e engine) {
	const hosts, keys = 6, 5
	dead := e.host(t, "takeover-race")
	stores := make([]lease.Store, hosts)
	for i := range stores {
		stores[i] = e.host(t, "takeover-race")
	}
	ctx := ctxFor(t, 60*time.Second)
	var last time.Time
	for k := 0; k < keys; k++ {
		l, err := dead.Acquire(ctx, fmt.Sprintf("sha256:dead%d", k), holderURL(99), e.ttl)
		if err != nil {
			t.Fatalf("acquire: %v", err)
		}
		last = l.Expires
	}
	// Everyone polls until one of them gets each key; all polls of a round
	// start together, so the takeover writes race.
	winners := make([][]int, keys)
	testwait.Eventually(t, e.ttl+15*time.Second, func() error {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for k := 0; k < keys; k++ {
			for h := 0; h < hosts; h++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l, err := stores[h].Acquire(ctx, fmt.Sprintf("sha256:dead%d", k), holderURL(h), time.Minute)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						winners[k] = append(winners[k], h)
					case errors.Is(err, lease.ErrHeld):
						if l.Holder == "" {
							t.Errorf("key %d host %d: ErrHeld without a holder", k, h)
						}
					default:
						t.Errorf("key %d host %d: %v", k, h, err)
					}
				}()
			}
		}
		wg.Wait()
		for k, w := range winners {
			if len(w) == 0 {
				return fmt.Errorf("key %d not taken over yet", k)
			}
		}
		return nil
	})
	if time.Now().Before(last) {
		t.Errorf("taken over before the dead holder's lease expired")
	}
	for k, w := range winners {
		if len(w) != 1 {
			t.Errorf("key %d: hosts %v all took the expired lease over, want exactly one", k, w)
		}
	}
}

// testLateRenew: a holder that renews only after its lease expired races
// two hosts taking it over, for several keys at once: exactly one of the
// three ends up holding each (the late renewal may win if nobody took the
// lease yet, but never beside a taker).
func testLateRenew(t *testing.T, e engine) {
	const keys = 5
	a, b, c := e.host(t, "late"), e.host(t, "late"), e.host(t, "late")
	ctx := ctxFor(t, 60*time.Second)
	leases := make([]lease.Lease, keys)
	for k := range leases {
		l, err := a.Acquire(ctx, fmt.Sprintf("sha256:late%d", k), holderURL(1), e.ttl)
		if err != nil {
			t.Fatal(err)
		}
		leases[k] = l
	}
	// Past the expiry as every engine judges it (the object stores add a
	// second of margin to one-second timestamps).
	time.Sleep(time.Until(leases[keys-1].Expires) + 2*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := make([][]string, keys)
	for k := range leases {
		key := fmt.Sprintf("sha256:late%d", k)
		win := func(who string) {
			mu.Lock()
			winners[k] = append(winners[k], who)
			mu.Unlock()
		}
		wg.Add(3)
		go func() {
			defer wg.Done()
			if _, err := a.Renew(ctx, leases[k], e.ttl); err == nil {
				win("A (late renew)")
			} else if !errors.Is(err, lease.ErrLost) {
				t.Errorf("key %d: A renew: %v", k, err)
			}
		}()
		for i, s := range []lease.Store{b, c} {
			go func() {
				defer wg.Done()
				if _, err := s.Acquire(ctx, key, holderURL(2+i), e.ttl); err == nil {
					win(holderURL(2 + i))
				} else if !errors.Is(err, lease.ErrHeld) {
					t.Errorf("key %d: acquire: %v", k, err)
				}
			}()
		}
	}
	wg.Wait()
	for k, w := range winners {
		if len(w) != 1 {
			t.Errorf("key %d: %v hold the lease, want exactly one", k, w)
		}
	}
}

// testRenew: a holder that renews keeps the lease for several times its
// ttl; once it releases, another host gets it at once.
func testRenew(t *testing.T, e engine) {
	a, b := e.host(t, "renew"), e.host(t, "renew")
	ctx := ctxFor(t, 60*time.Second)
	const key = "sha256:renew"
	l, err := a.Acquire(ctx, key, holderURL(1), e.ttl)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	first := l.Expires
	end := time.Now().Add(3 * e.ttl)
	for time.Now().Before(end) {
		// Renew at a third of the ttl, as a filler does.
		time.Sleep(e.ttl / 3)
		if l, err = a.Renew(ctx, l, e.ttl); err != nil {
			t.Fatalf("renew: %v", err)
		}
		theirs, err := b.Acquire(ctx, key, holderURL(2), e.ttl)
		if !errors.Is(err, lease.ErrHeld) || theirs.Holder != holderURL(1) {
			t.Fatalf("B acquire while A renews: (%+v, %v), want A's lease and ErrHeld", theirs, err)
		}
	}
	if !l.Expires.After(first.Add(2 * e.ttl)) {
		t.Errorf("renewed lease expires %s, want past the first expiry %s plus 2 ttl", l.Expires, first)
	}
	if err := a.Release(ctx, l); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := b.Acquire(ctx, key, holderURL(2), e.ttl); err != nil {
		t.Errorf("B acquire after A released: %v", err)
	}
}

// testRelease: a released lease is free at once; releasing it again, or
// renewing it, says ErrLost and does not touch the next holder's lease.
func testRelease(t *testing.T, e engine) {
	a, b := e.host(t, "release"), e.host(t, "release")
	ctx := ctxFor(t, 30*time.Second)
	const key = "sha256:release"
	for i := 0; i < 3; i++ {
		l, err := a.Acquire(ctx, key, holderURL(1), time.Minute)
		if err != nil {
			t.Fatalf("round %d: acquire: %v", i, err)
		}
		if err := a.Release(ctx, l); err != nil {
			t.Fatalf("round %d: release: %v", i, err)
		}
		if err := a.Release(ctx, l); !errors.Is(err, lease.ErrLost) {
			t.Errorf("round %d: second release: %v, want ErrLost", i, err)
		}
		lb, err := b.Acquire(ctx, key, holderURL(2), time.Minute)
		if err != nil {
			t.Fatalf("round %d: B acquire after release: %v", i, err)
		}
		if _, err := a.Renew(ctx, l, time.Minute); !errors.Is(err, lease.ErrLost) {
			t.Errorf("round %d: renew of a released lease: %v, want ErrLost", i, err)
		}
		// The renewed lease replaces the old one (engines may version it).
		if lb, err = b.Renew(ctx, lb, time.Minute); err != nil {
			t.Fatalf("round %d: B renew: %v", i, err)
		}
		if err := b.Release(ctx, lb); err != nil {
			t.Fatalf("round %d: B release: %v", i, err)
		}
	}
}

// testNamespaces: two fleets on one engine never see each other's leases.
func testNamespaces(t *testing.T, e engine) {
	pub, priv := e.host(t, "ns/public"), e.host(t, "ns/private")
	ctx := ctxFor(t, 30*time.Second)
	const key = "sha256:shared-name"
	if _, err := pub.Acquire(ctx, key, holderURL(1), time.Minute); err != nil {
		t.Fatalf("public acquire: %v", err)
	}
	if _, err := priv.Acquire(ctx, key, holderURL(2), time.Minute); err != nil {
		t.Errorf("private acquire of the same key: %v, want its own lease", err)
	}
}

func testInvalid(t *testing.T, e engine) {
	s := e.host(t, "invalid")
	ctx := ctxFor(t, 10*time.Second)
	for _, c := range []struct {
		key, holder string
		ttl         time.Duration
	}{
		{"", holderURL(1), time.Minute},
		{"../../etc", holderURL(1), time.Minute},
		{"sha256:x/y", holderURL(1), time.Minute},
		{"sha256:x", "", time.Minute},
		{"sha256:x", "http://a\nb", time.Minute},
		{"sha256:x", holderURL(1), time.Millisecond},
	} {
		if _, err := s.Acquire(ctx, c.key, c.holder, c.ttl); err == nil || errors.Is(err, lease.ErrHeld) {
			t.Errorf("Acquire(%q, %q, %s): %v, want a validation error", c.key, c.holder, c.ttl, err)
		}
	}
	if _, err := s.Renew(ctx, lease.Lease{Key: "sha256:x", Holder: holderURL(1)}, time.Minute); err == nil || errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew of a lease not from Acquire: %v, want an error saying so", err)
	}
}

// testUnreachable: a store that is down (refuses) or hangs (accepts and
// never answers) fails within the caller's deadline, with an error that
// is neither ErrHeld nor ErrLost.
func testUnreachable(t *testing.T, open func(t *testing.T, addr string) lease.Store) {
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}()
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(conns.Wait) // runs after the Close below (cleanups run last first)
	t.Cleanup(func() { hang.Close() })
	conns.Add(1)
	go func() {
		defer conns.Done()
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	for name, addr := range map[string]string{"refused": refused, "hanging": hang.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			s := open(t, addr)
			defer s.Close()
			const deadline = 500 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			_, err := s.Acquire(ctx, "sha256:down", holderURL(1), time.Minute)
			took := time.Since(start)
			if err == nil || errors.Is(err, lease.ErrHeld) || errors.Is(err, lease.ErrLost) {
				t.Fatalf("Acquire on a %s store: %v, want an engine error", name, err)
			}
			// Generous slack for a loaded machine; what matters is that it
			// ends near the caller's deadline, not at a client default.
			if took > deadline+1500*time.Millisecond {
				t.Errorf("Acquire on a %s store took %s, want about the caller's %s deadline", name, took, deadline)
			}
			t.Logf("%s: %v after %s", name, err, took.Round(time.Millisecond))
		})
	}
}
