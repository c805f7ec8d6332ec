package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/config"
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

// A relative $SPACELIFT_DOCKER_CONFIG_DIR is a usage error that says what to
// do, and nothing is written where it points from the working directory.
func TestRefreshRefusesARelativeConfigDir(t *testing.T) {
	t.Setenv("TOLLGATE_CACHE_DIR", t.TempDir())
	cwd := t.TempDir()
	t.Chdir(cwd)
	t.Setenv("SPACELIFT_DOCKER_CONFIG_DIR", "docker")
	var stdout, stderr bytes.Buffer
	code := runRefresh(context.Background(), []string{"--registry", "111111111111.dkr.ecr.us-west-2.amazonaws.com"}, &stdout, &stderr)
	if code != refreshUsage || !strings.Contains(stderr.String(), "SPACELIFT_DOCKER_CONFIG_DIR is a relative path") || !strings.Contains(stderr.String(), "make it absolute") {
		t.Fatalf("exit %d, stderr %q; want %d and the reason", code, stderr.String(), refreshUsage)
	}
	if _, err := os.Stat(filepath.Join(cwd, "docker")); !os.IsNotExist(err) {
		t.Fatalf("the relative directory was created: %v", err)
	}
}

// A one-shot refresh prints its own report lines, so it raises the default
// info level to warn; a level the operator lowered to debug (to see why a
// refresh fails) is kept, and loop mode keeps whatever is configured.
func TestRefreshLoggerLevels(t *testing.T) {
	cases := []struct {
		level string
		loop  bool
		debug bool // debug records are logged
		info  bool // info records are logged
	}{
		{"info", false, false, false},
		{"debug", false, true, true},
		{"error", false, false, false},
		{"info", true, false, true},
		{"debug", true, true, true},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		log, closeLog := refreshLogger(config.Log{Level: c.level, Format: "text"}, &stderr, c.loop)
		ctx := context.Background()
		if got := log.Enabled(ctx, slog.LevelDebug); got != c.debug {
			t.Errorf("log.level %s, loop %v: debug enabled = %v, want %v", c.level, c.loop, got, c.debug)
		}
		if got := log.Enabled(ctx, slog.LevelInfo); got != c.info {
			t.Errorf("log.level %s, loop %v: info enabled = %v, want %v", c.level, c.loop, got, c.info)
		}
		closeLog()
	}
}
