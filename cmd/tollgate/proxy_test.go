package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A private proxy serves config-dir logins, so a relative
// $SPACELIFT_DOCKER_CONFIG_DIR stops it at start-up with what to do, rather
// than reading logins from wherever it was started.
func TestProxyRefusesARelativeConfigDir(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	yaml := "mode: private\nproxy:\n  listen: 127.0.0.1:0\n  cache:\n    dir: " + filepath.Join(dir, "cache") + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOLLGATE_CACHE_DIR", t.TempDir())
	t.Chdir(dir)
	t.Setenv("SPACELIFT_DOCKER_CONFIG_DIR", "docker")
	// Were the variable accepted, the proxy would serve until ctx ends and
	// exit 0.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := runProxy(ctx, []string{"--config", cfg}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "SPACELIFT_DOCKER_CONFIG_DIR is a relative path") || !strings.Contains(stderr.String(), "make it absolute") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
