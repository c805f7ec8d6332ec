package doctor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/internal/testwait"
	"github.com/spacelift-io/tollgate/proxy/cache"
	"github.com/spacelift-io/tollgate/proxy/fleet"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

const (
	peersSecret = "doctor-fleet-peers-secret-0123456789"
	otherSecret = "another-fleet-secret-9876543210abcdef"
)

// peersFleet is a fleet of real nodes serving on loopback with their
// leases on one filesystem shared tier.
type peersFleet struct {
	root string
}

func (f *peersFleet) leases(t *testing.T) lease.Store {
	t.Helper()
	s, err := lease.Open(context.Background(), lease.SpecShared, fleet.Namespace("private"), "filesystem", map[string]any{"rootdirectory": f.root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// listen opens a listener on a free port of the loopback address ip.
func listen(t *testing.T, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s (every 127.0.0.0/8 address is loopback on Linux): %v", ip, err)
	}
	return ln
}

// serve starts a node on ip keyed by secret and returns its advertise URL.
func (f *peersFleet) serve(t *testing.T, ip, secret string) string {
	t.Helper()
	ln := listen(t, ip)
	s, err := fleet.NewSecret([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	n, err := fleet.New(fleet.Options{Advertise: url, Secret: s, Mode: "private", Leases: f.leases(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(context.Background(), cache.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ln, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", url, err)
		}
		_ = c.Close(context.Background())
	})
	return url
}

// waitMembers waits until the fleet's member records name want.
func (f *peersFleet) waitMembers(t *testing.T, want ...string) {
	t.Helper()
	s := f.leases(t)
	testwait.Eventually(t, 10*time.Second, func() error {
		got, _, err := fleet.Members(context.Background(), s, 64)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(fmt.Sprint(got), w) {
				return fmt.Errorf("members %v, want %s among them", got, w)
			}
		}
		return nil
	})
}

// hostConfig is the config of the host doctor runs on: its fleet section
// advertises self.
func (f *peersFleet) hostConfig(t *testing.T, self, secret string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fleet.secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &config.Config{
		Mode: config.ModePrivate,
		Proxy: config.Proxy{
			Shared: &config.SharedCache{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": f.root}},
			Fleet:  &config.Fleet{Listen: strings.TrimPrefix(self, "http://"), Advertise: self, SecretFile: p, Lease: config.FleetLeaseShared},
		},
	}
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T, ip string) string {
	ln := listen(t, ip)
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

// blackHole listens on ip, accepts connections and never answers; it
// returns its URL.
func blackHole(t *testing.T, ip string) string {
	t.Helper()
	ln := listen(t, ip)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

func checkPeers(t *testing.T, cfg *config.Config) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := checkFleetPeers(ctx, cfg, true)
	t.Logf("fleet-peers: %s: %s (fix: %s)", r.Status, r.Detail, r.Fix)
	for _, s := range []string{peersSecret, otherSecret} {
		if strings.Contains(r.Detail+r.Fix, s) {
			t.Errorf("fleet-peers shows a fleet secret: %+v", r)
		}
	}
	return r
}

// TestFleetPeers: with two real nodes serving, doctor on one of them finds
// both member records and both answer its signed ping; a member record
// naming a dead port, and a member with another secret, make it warn,
// naming each and why.
func TestFleetPeers(t *testing.T) {
	f := &peersFleet{root: t.TempDir()}
	a := f.serve(t, "127.0.0.2", peersSecret)
	b := f.serve(t, "127.0.0.3", peersSecret)
	f.waitMembers(t, a, b)
	cfg := f.hostConfig(t, a, peersSecret)

	r := checkPeers(t, cfg)
	if r.Status != StatusOK || !strings.Contains(r.Detail, "2 of 2 fleet members answer") ||
		!strings.Contains(r.Detail, a+" (this host) answers") || !strings.Contains(r.Detail, b+" answers") {
		t.Errorf("two healthy members: %+v, want ok naming both", r)
	}

	// A member record left by a host whose proxy is gone.
	dead := deadURL(t, "127.0.0.4")
	if _, err := f.leases(t).Acquire(context.Background(), fleet.MemberPrefix+"dead", dead, time.Minute); err != nil {
		t.Fatal(err)
	}
	r = checkPeers(t, cfg)
	if r.Status != StatusWarn || !strings.Contains(r.Detail, "2 of 3") || !strings.Contains(r.Detail, dead+": connection refused") ||
		!strings.Contains(r.Fix, "refuses connections") {
		t.Errorf("with a dead member: %+v, want a warning naming %s, connection refused, and a fix", r, dead)
	}

	// A member whose machine accepts connections and never answers (a
	// black hole on the way).
	hole := blackHole(t, "127.0.0.6")
	if _, err := f.leases(t).Acquire(context.Background(), fleet.MemberPrefix+"hole", hole, time.Minute); err != nil {
		t.Fatal(err)
	}
	r = checkPeers(t, cfg)
	if r.Status != StatusWarn || !strings.Contains(r.Detail, "2 of 4") || !strings.Contains(r.Detail, hole+": no answer within") ||
		!strings.Contains(r.Fix, "security group") {
		t.Errorf("with a member that never answers: %+v, want a warning naming %s as not answering in time", r, hole)
	}

	// A member keyed with another secret.
	c := f.serve(t, "127.0.0.5", otherSecret)
	f.waitMembers(t, c)
	r = checkPeers(t, cfg)
	if r.Status != StatusWarn || !strings.Contains(r.Detail, "2 of 5") || !strings.Contains(r.Detail, c+" refused the signature") ||
		!strings.Contains(r.Fix, "same proxy.fleet.secret_file") {
		t.Errorf("with a member of another secret: %+v, want a warning naming %s as refusing the signature", r, c)
	}
}

// TestFleetPeersThisHostDown: the member records are there but this host's
// own advertise URL has no listener and no record: a warning that says so.
func TestFleetPeersThisHostDown(t *testing.T) {
	f := &peersFleet{root: t.TempDir()}
	b := f.serve(t, "127.0.0.3", peersSecret)
	f.waitMembers(t, b)
	self := deadURL(t, "127.0.0.2")
	r := checkPeers(t, f.hostConfig(t, self, peersSecret))
	if r.Status != StatusWarn || !strings.Contains(r.Detail, self+" (this host): connection refused") ||
		!strings.Contains(r.Detail, "this host has no member record") || !strings.Contains(r.Fix, "start the proxy") {
		t.Errorf("this host down: %+v", r)
	}
}

// TestFleetPeersNoMembers: an engine without member records (nobody
// serving, or another engine) is a warning with a fix.
func TestFleetPeersNoMembers(t *testing.T) {
	f := &peersFleet{root: t.TempDir()}
	self := deadURL(t, "127.0.0.2")
	r := checkPeers(t, f.hostConfig(t, self, peersSecret))
	if r.Status != StatusWarn || !strings.Contains(r.Detail, "no fleet member records") || r.Fix == "" {
		t.Errorf("no members: %+v", r)
	}
}

func TestFleetPeersSkipsAndFails(t *testing.T) {
	f := &peersFleet{root: t.TempDir()}
	cfg := f.hostConfig(t, "http://127.0.0.2:5001", peersSecret)
	ctx := context.Background()
	if r := checkFleetPeers(ctx, cfg, false); r.Status != StatusSkip || !strings.Contains(r.Detail, "--proxy") {
		t.Errorf("without --proxy: %+v, want skip saying it runs with --proxy", r)
	}
	if r := checkFleetPeers(ctx, &config.Config{Mode: config.ModePrivate}, true); r.Status != StatusSkip || !strings.Contains(r.Detail, "proxy.fleet") {
		t.Errorf("without a fleet: %+v, want skip", r)
	}
	if r := checkFleetPeers(ctx, nil, true); r.Status != StatusSkip {
		t.Errorf("without a config: %+v, want skip", r)
	}
	if err := os.Chmod(cfg.Proxy.Fleet.SecretFile, 0o644); err != nil {
		t.Fatal(err)
	}
	r := checkFleetPeers(ctx, cfg, true)
	if r.Status != StatusFail || r.Fix == "" || !strings.Contains(r.Detail, "readable by other users") || strings.Contains(r.Detail+r.Fix, peersSecret) {
		t.Errorf("secret file readable by others: %+v, want a failure with a fix, without the secret", r)
	}
}
