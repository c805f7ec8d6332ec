package integration

// doctor's shared-tier and fleet-lease checks against a real S3 server.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/integration/harness"
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
