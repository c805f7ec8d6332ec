package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// opsModuleRoot is the repository root.
func opsModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// opsBinDir returns the directory holding the freshly built tollgate and
// docker-credential-tollgate: `go build ./cmd/...`, the package pattern the
// Dockerfile's build stage builds.
func opsBinDir(t testing.TB) string {
	t.Helper()
	return harness.BuildBinaries(t)
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
