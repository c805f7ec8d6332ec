package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binaries sharedOnce

// BuildBinaries builds the module's commands (go build ./cmd/...) once per
// test process into a temporary directory and returns it: it holds
// docker-credential-tollgate and tollgate. The directory is shared by every
// test of the process, so no test removes it; the next test process removes
// those of processes that have ended, and RemoveBinaries (from TestMain)
// removes it at once.
func BuildBinaries(t testing.TB) string {
	t.Helper()
	dir, err := binaries.do(func() (string, error) {
		root, err := ModuleRoot()
		if err != nil {
			return "", err
		}
		dir, err := processDir("tollgate-test-bin")
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/...: %w\n%s", err, out)
		}
		return dir, nil
	})
	if err != nil {
		t.Fatalf("harness: building binaries: %v", err)
	}
	return dir
}

// RemoveBinaries removes what BuildBinaries built, if anything.
func RemoveBinaries() {
	if dir, err := binaries.do(func() (string, error) { return "", fmt.Errorf("not built") }); err == nil && dir != "" {
		os.RemoveAll(dir)
	}
}

// ModuleRoot is the directory of the main module's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the tollgate module")
	}
	return filepath.Dir(gomod), nil
}

// PathWith returns the environment's PATH with dir in front, as a PATH=
// entry: for running a client that must find the built helpers.
func PathWith(dir string) string {
	return "PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// processDir makes $TMPDIR/<name>/<pid>, after removing the directories
// there that belong to processes that no longer run.
func processDir(name string) (string, error) {
	parent := filepath.Join(os.TempDir(), name)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
	dir := filepath.Join(parent, strconv.Itoa(os.Getpid()))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.Mkdir(dir, 0o755)
}
