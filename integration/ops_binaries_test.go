package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// opsBins builds every command under ./cmd/ once per test process, the same
// package pattern the Dockerfile's build stage builds, into a directory
// reused across runs (keyed by the module root, so worktrees do not clash).
var opsBins struct {
	once sync.Once
	dir  string
	root string
	err  error
	out  []byte
}

func opsModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the tollgate module")
	}
	return filepath.Dir(gomod)
}

// opsBinDir returns the directory holding the freshly built tollgate and
// docker-credential-tollgate binaries.
func opsBinDir(t testing.TB) string {
	t.Helper()
	root := opsModuleRoot(t)
	opsBins.once.Do(func() {
		sum := sha256.Sum256([]byte(root))
		opsBins.root = root
		opsBins.dir = filepath.Join(os.TempDir(), "tollgate-ops-bin-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(opsBins.dir, 0o755); err != nil {
			opsBins.err = err
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", opsBins.dir+"/", "./cmd/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		opsBins.out, opsBins.err = cmd.CombinedOutput()
	})
	if opsBins.err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", opsBins.err, opsBins.out)
	}
	return opsBins.dir
}

// opsTollgate returns the path of the built tollgate binary.
func opsTollgate(t testing.TB) string {
	return filepath.Join(opsBinDir(t), "tollgate")
}

type opsRun struct {
	code           int
	stdout, stderr string
}

// opsRunCmd runs bin with args and env (added to a minimal environment),
// bounded by timeout.
func opsRunCmd(t testing.TB, timeout time.Duration, env []string, bin string, args ...string) opsRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v: did not finish within %v\nstdout:\n%s\nstderr:\n%s", bin, args, timeout, so.String(), se.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		code = ee.ExitCode()
	}
	return opsRun{code: code, stdout: so.String(), stderr: se.String()}
}
