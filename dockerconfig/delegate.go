package dockerconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spacelift-io/tollgate/internal/credsource"
)

// EnvDelegated is set in the environment of every credential helper tollgate
// runs. A tollgate that finds it set was started, directly or not, by
// tollgate itself (say, under another helper name): it then runs no helper,
// which breaks any loop a config could build.
const EnvDelegated = "TOLLGATE_DELEGATED"

var (
	// ErrHelperMissing: the named docker-credential-<name> is not on PATH.
	ErrHelperMissing = errors.New("credential helper not found")
	// ErrHelperTimeout: the helper did not answer in time and was killed.
	ErrHelperTimeout = errors.New("credential helper timed out")
	// ErrHelperFailed: the helper ran and reported an error.
	ErrHelperFailed = errors.New("credential helper failed")
)

// isSelf reports whether helper name h must not be run: it is tollgate
// itself, by name or because docker-credential-<h> is this executable, or
// this process was itself started by tollgate.
func (s *Store) isSelf(h string) bool {
	if h == "" || (s.Self != "" && h == s.Self) || os.Getenv(EnvDelegated) != "" {
		return true
	}
	path, err := exec.LookPath("docker-credential-" + h)
	if err != nil {
		return false
	}
	self, err := os.Executable()
	if err != nil {
		return false
	}
	a, err1 := os.Stat(path)
	b, err2 := os.Stat(self)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// program returns a ProgramFunc running docker-credential-<name> under ctx,
// or a clear error when the name is unusable or the program is missing.
func (s *Store) program(ctx context.Context, name, origin string) (client.ProgramFunc, error) {
	if strings.ContainsAny(name, `/\`) || strings.TrimSpace(name) != name {
		return nil, fmt.Errorf("%w: %s in %s names %q, which is not a helper name (docker runs docker-credential-<name> from PATH)", ErrHelperMissing, origin, s.Path(), name)
	}
	bin := "docker-credential-" + name
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%w: %s in %s names %q, but %s is not on PATH: install it or remove that entry", ErrHelperMissing, origin, s.Path(), name, bin)
	}
	return func(args ...string) client.Program {
		return &ctxProgram{ctx: ctx, path: path, args: args}
	}, nil
}

// ctxProgram is a client.Program whose process (and its process group) is
// killed when ctx ends, so a hanging helper cannot hang tollgate.
type ctxProgram struct {
	ctx   context.Context
	path  string
	args  []string
	input io.Reader
}

func (p *ctxProgram) Input(in io.Reader) { p.input = in }

func (p *ctxProgram) Output() ([]byte, error) {
	cmd := exec.CommandContext(p.ctx, p.path, p.args...)
	cmd.Stdin = p.input
	cmd.Env = append(os.Environ(), EnvDelegated+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The helper answered and exited 0; something it started still
		// holds its stdout. The answer is complete.
		return out, nil
	}
	if err != nil && json.Valid(bytes.TrimSpace(out)) {
		// The client quotes a failed helper's output as its error message;
		// JSON there is not a message but an answer, which may hold a secret.
		out = []byte("(output not shown: it is JSON, and may hold a secret)")
	}
	return out, err
}

// run calls op (one of client's Get/Store/Erase/List) with a bounded time and
// turns its failure into a clear error naming the helper and where the config
// names it. The error never includes a secret: helpers' failure output is
// their error message.
func (s *Store) run(ctx context.Context, name, origin, action string, op func(client.ProgramFunc) error) error {
	timeout := s.HelperTimeout
	if timeout <= 0 {
		timeout = DefaultHelperTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prog, err := s.program(cctx, name, origin)
	if err != nil {
		return err
	}
	err = op(prog)
	if err == nil {
		return nil
	}
	if credsource.IsNotFound(err) {
		// One not-found error for every source (docker-credential-helpers'
		// has the same marker, and another message).
		return credsource.ErrNotFound
	}
	bin := "docker-credential-" + name
	if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("%w: %s (%s in %s) did not answer %s within %s and was killed; check that helper, or remove that entry", ErrHelperTimeout, bin, origin, s.Path(), action, timeout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", bin, action, ctx.Err())
	}
	return fmt.Errorf("%w: %s (%s in %s) %s: %v", ErrHelperFailed, bin, origin, s.Path(), action, err)
}

func (s *Store) helperGet(ctx context.Context, name, origin, serverURL string) (username, secret string, err error) {
	var c *credentials.Credentials
	err = s.run(ctx, name, origin, "get", func(p client.ProgramFunc) error {
		var err error
		c, err = client.Get(p, serverURL)
		return err
	})
	if err != nil {
		return "", "", err
	}
	if c.Username == "" && c.Secret == "" {
		return "", "", credsource.ErrNotFound
	}
	return c.Username, c.Secret, nil
}

func (s *Store) helperStore(ctx context.Context, name, origin, serverURL, username, secret string) error {
	return s.run(ctx, name, origin, "store", func(p client.ProgramFunc) error {
		return client.Store(p, &credentials.Credentials{ServerURL: serverURL, Username: username, Secret: secret})
	})
}

func (s *Store) helperErase(ctx context.Context, name, origin, serverURL string) error {
	err := s.run(ctx, name, origin, "erase", func(p client.ProgramFunc) error {
		return client.Erase(p, serverURL)
	})
	if credsource.IsNotFound(err) || (err != nil && strings.Contains(err.Error(), credentials.NewErrCredentialsNotFound().Error())) {
		return nil // already gone
	}
	return err
}

func (s *Store) helperList(ctx context.Context, name, origin string) (map[string]string, error) {
	var out map[string]string
	err := s.run(ctx, name, origin, "list", func(p client.ProgramFunc) error {
		var err error
		out, err = client.List(p)
		return err
	})
	return out, err
}
