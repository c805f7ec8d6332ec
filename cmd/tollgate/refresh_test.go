package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Invalid ecr.registries settings are a config error: exit 2, as for every
// other config error, and nothing is written.
func TestRefreshBadRegistrySettingsIsAConfigError(t *testing.T) {
	t.Setenv("TOLLGATE_CACHE_DIR", t.TempDir())
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfg, []byte("ecr:\n  registries:\n    111111111111.dkr.ecr.us-west-2.amazonaws.com:\n      role_arn: puller\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.json")
	var stdout, stderr bytes.Buffer
	code := runRefresh(context.Background(), []string{"--config", cfg, "--output", out,
		"--registry", "111111111111.dkr.ecr.us-west-2.amazonaws.com"}, &stdout, &stderr)
	if code != refreshUsage || !strings.Contains(stderr.String(), "role_arn") {
		t.Fatalf("exit %d, stderr %q; want %d and the setting named", code, stderr.String(), refreshUsage)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output written: %v", err)
	}
}
