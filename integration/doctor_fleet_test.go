package integration

// doctor's shared-tier and fleet-lease checks against a real S3 server, and
// its fleet-peers check against real proxies in fleet mode.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

// TestDoctorSharedTierAndLease: with an S3 shared tier configured, doctor
// looks the tier up and takes, re-takes (refused) and releases a lease in
// it; with the store down both checks fail, within the run's time bound.
func TestDoctorSharedTierAndLease(t *testing.T) {
	store := harness.StartSeaweedFS(t)
	h := newOpsHost(t, fakeaws.Options{})
	cfg := harness.ProxyConfig{
		CacheDir: filepath.Join(t.TempDir(), "cache"),
		Shared:   &harness.SharedTier{Driver: "s3", Parameters: store.SharedParameters("/tollgate")},
	}
	path := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(path, []byte(cfg.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}

	rep, _, _ := h.doctor(nil, "--config", path)
	if c := rep.get(t, "proxy-shared"); c.Status != "ok" || !strings.Contains(c.Detail, store.Bucket) {
		t.Errorf("proxy-shared with the store up: %+v", c)
	}
	if c := rep.get(t, "fleet-lease"); c.Status != "ok" {
		t.Errorf("fleet-lease with the store up: %+v", c)
	}
	for _, c := range rep.Checks {
		if strings.Contains(c.Detail+c.Fix, store.SecretKey) {
			t.Errorf("check %s shows the secret key", c.Name)
		}
	}

	store.Stop()
	rep, code, took := h.doctor(nil, "--config", path, "--timeout", "2s")
	for _, name := range []string{"proxy-shared", "fleet-lease"} {
		if c := rep.get(t, name); c.Status != "fail" || c.Fix == "" {
			t.Errorf("%s with the store down: %+v, want a failure with a fix", name, c)
		}
	}
	for _, name := range []string{"proxy-shared", "fleet-lease"} {
		c := rep.get(t, name)
		t.Logf("store down: %s: %s (fix: %s)", name, c.Detail, c.Fix)
	}
	if code != 1 {
		t.Errorf("exit %d with the store down, want 1", code)
	}
	if took > 30*time.Second {
		t.Errorf("doctor took %s with the store down", took)
	}
}

// TestDoctorNoSharedTier: without proxy.shared both checks are skipped.
func TestDoctorNoSharedTier(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	rep, _, _ := h.doctor(nil)
	for _, name := range []string{"proxy-shared", "fleet-lease"} {
		if c := rep.get(t, name); c.Status != "skip" {
			t.Errorf("%s without a shared tier: %+v, want skip", name, c)
		}
	}
}

// TestDoctorFleetPeers: two real proxies in fleet mode (peer listeners on
// 127.0.0.x, leases in one redis-server). `tollgate doctor --proxy` on the
// first finds both proxies' member records and both answer its signed
// ping; once the second stops (SIGTERM), its record is gone and doctor
// names the first alone. Without --proxy the check is skipped.
//
// needs: docker-registry redis-server
func TestDoctorFleetPeers(t *testing.T) {
	f := startFleet(t, fleetOptions{hosts: 2})
	h := newOpsHost(t, fakeaws.Options{})
	a, b := f.proxies[0], f.proxies[1]
	peers := func() opsDoctorCheck {
		t.Helper()
		rep, _, _ := h.doctor(nil, "--config", a.ConfigPath, "--proxy", a.URL)
		for _, c := range rep.Checks {
			if strings.Contains(c.Detail+c.Fix, fleetSecret) {
				t.Errorf("check %s shows the fleet secret", c.Name)
			}
		}
		return rep.get(t, "fleet-peers")
	}
	var c opsDoctorCheck
	// Each proxy writes its record as its peer listener starts.
	testwait.Eventually(t, 30*time.Second, func() error {
		c = peers()
		if c.Status != "ok" || !strings.Contains(c.Detail, "2 of 2 fleet members answer") {
			return fmt.Errorf("fleet-peers: %+v", c)
		}
		return nil
	})
	if !strings.Contains(c.Detail, a.peerURL+" (this host) answers") || !strings.Contains(c.Detail, b.peerURL+" answers") {
		t.Errorf("fleet-peers with both proxies up: %+v, want both named", c)
	}

	b.Stop()
	c = peers()
	if c.Status != "ok" || !strings.Contains(c.Detail, "1 of 1 fleet members answer") || strings.Contains(c.Detail, b.peerURL) {
		t.Errorf("fleet-peers after the second proxy stopped: %+v, want only this host (a stopped proxy releases its record)", c)
	}

	rep, _, _ := h.doctor(nil, "--config", a.ConfigPath)
	if c := rep.get(t, "fleet-peers"); c.Status != "skip" {
		t.Errorf("fleet-peers without --proxy: %+v, want skip", c)
	}
}
