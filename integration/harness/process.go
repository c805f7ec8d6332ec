package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a subprocess started by the harness, with its output in files.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	// Stdout and Stderr are the paths of the files holding the process output.
	Stdout, Stderr string

	done    chan struct{}
	waitErr error
}

// StartProcess starts cmd with its stdout and stderr written to files in
// dir, named after name. On t.Cleanup the process gets SIGTERM, then SIGKILL
// after 10 s; if the test failed, the tail of both files is logged.
func StartProcess(t testing.TB, name, dir string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{
		Name:   name,
		Cmd:    cmd,
		Stdout: filepath.Join(dir, name+".stdout.log"),
		Stderr: filepath.Join(dir, name+".stderr.log"),
		done:   make(chan struct{}),
	}
	outf, err := os.Create(p.Stdout)
	if err != nil {
		t.Fatalf("harness: %s: %v", name, err)
	}
	errf, err := os.Create(p.Stderr)
	if err != nil {
		outf.Close()
		t.Fatalf("harness: %s: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = outf, errf
	// Own process group, so that stopping it also stops what it started
	// (dockerd's shims, for instance) and a Ctrl-C of go test reaches it once.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		outf.Close()
		errf.Close()
		t.Fatalf("harness: starting %s: %v", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		outf.Close()
		errf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.LogTail(t, 30)
			p.keepLogs(t)
		}
	})
	return p
}

// KeepLogsEnv names a directory to which the full logs of every process of
// a failed test are copied (the temp dirs holding them are removed).
const KeepLogsEnv = "TOLLGATE_TEST_KEEP_LOGS"

func (p *Process) keepLogs(t testing.TB) {
	dir := os.Getenv(KeepLogsEnv)
	if dir == "" {
		t.Logf("(set %s=DIR to keep the full logs of failed tests)", KeepLogsEnv)
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	for _, f := range []string{p.Stdout, p.Stderr} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		dst := filepath.Join(dir, name+"."+filepath.Base(f))
		if os.MkdirAll(dir, 0o755) == nil && os.WriteFile(dst, b, 0o644) == nil {
			t.Logf("kept %s", dst)
		}
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the result of Wait once the process has ended.
func (p *Process) Err() error {
	<-p.done
	return p.waitErr
}

// Stop ends the process: SIGTERM to its process group, SIGKILL after 10 s.
// Calling it again, or after the process ended, does nothing.
func (p *Process) Stop() {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(10 * time.Second):
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Kill ends the process at once with SIGKILL and waits for it.
func (p *Process) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Signal sends sig to the process group, if the process still runs.
func (p *Process) Signal(sig syscall.Signal) {
	if p.Exited() || p.Cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
}

// Output returns what the process wrote so far to stdout and stderr.
func (p *Process) Output() (stdout, stderr string) {
	o, _ := os.ReadFile(p.Stdout)
	e, _ := os.ReadFile(p.Stderr)
	return string(o), string(e)
}

// LogTail logs the last n lines of the process's stdout and stderr.
func (p *Process) LogTail(t testing.TB, n int) {
	t.Helper()
	o, e := p.Output()
	t.Logf("---- %s (pid %d) stdout, last %d lines (%s):\n%s", p.Name, p.pid(), n, p.Stdout, tail(o, n))
	t.Logf("---- %s (pid %d) stderr, last %d lines (%s):\n%s", p.Name, p.pid(), n, p.Stderr, tail(e, n))
}

func (p *Process) pid() int {
	if p.Cmd.Process == nil {
		return 0
	}
	return p.Cmd.Process.Pid
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 500 {
			lines[i] = l[:500] + " [...]"
		}
	}
	return strings.Join(lines, "\n")
}

// WaitFor polls ready every 50 ms until it returns nil, the process exits,
// or timeout passes; then it fails the test with the last error and the
// process's log tail.
func (p *Process) WaitFor(t testing.TB, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = ready(); last == nil {
			return
		}
		if p.Exited() {
			p.LogTail(t, 30)
			t.Fatalf("harness: %s exited before it was ready (%v); last check: %v", p.Name, p.Err(), last)
		}
		if time.Now().After(deadline) {
			p.LogTail(t, 30)
			t.Fatalf("harness: %s not ready after %s: %v", p.Name, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Helpers that hand it to a subprocess retry with another port if the
// subprocess finds it taken.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SocketDir returns a new private directory with a short path, for unix
// sockets (whose paths are limited to 108 bytes, which t.TempDir's long
// names can exceed). It is removed on cleanup.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tg")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Run runs a command to completion and returns its stdout; on failure the
// error carries stderr. The command gets ctx's deadline.
func Run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\nstderr:\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s (run as root, as CI does, after scripts/install-test-deps.sh)", what)
	}
}

// RequireCommands checks that each program is on PATH. When one is missing
// it skips the test if not root, and fails it as root: scripts/test.sh
// installs them as root, so there a missing program is a broken setup.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing programs %s: run scripts/install-test-deps.sh as root", strings.Join(missing, ", "))
	if os.Geteuid() != 0 {
		t.Skip(msg)
	}
	t.Fatal(msg)
}

// sharedOnce is a per-process sync.Once with an error, for expensive setup
// shared by every test of a package (building binaries).
type sharedOnce struct {
	once sync.Once
	val  string
	err  error
}

func (s *sharedOnce) do(f func() (string, error)) (string, error) {
	s.once.Do(func() { s.val, s.err = f() })
	return s.val, s.err
}
