package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spacelift-io/tollgate/credhelper"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
)

// cachedTokens gives the resolver ECR tokens: from the disk cache when it
// holds one with more than the refresh margin left, else from
// `tollgate ecr-token --json`, which mints under the cache's lock. Keeping
// minting in the other binary keeps the AWS SDK, and its start-up cost, out
// of this one: a warm get is a file read.
type cachedTokens struct {
	lookup tokencache.Lookup
	// err, when set, is why the cache settings are unusable: every
	// lookup fails with it.
	err    error
	log    *slog.Logger
	stderr io.Writer
}

var _ credhelper.TokenSource = (*cachedTokens)(nil)

func (c *cachedTokens) Token(ctx context.Context, host string) (tokencache.Token, error) {
	if c.err != nil {
		return tokencache.Token{}, c.err
	}
	req, err := c.lookup.Resolve(host)
	if err != nil {
		return tokencache.Token{}, err
	}
	ent, err := c.lookup.Fresh(req)
	if err != nil {
		c.log.Debug("ignoring token cache file", "file", c.lookup.Disk.Path(req.Scope), "err", err)
	}
	if ent != nil {
		return ent.Token(req.Registry, false), nil
	}
	return c.mint(ctx, req)
}

// mint runs `tollgate ecr-token --json HOST` and reads its answer. The child
// inherits the environment (credentials, cache, config, log settings) and
// stderr; its stdout carries the token, so it is never logged.
func (c *cachedTokens) mint(ctx context.Context, req tokencache.Request) (tokencache.Token, error) {
	bin, err := tollgateBinary()
	if err != nil {
		return tokencache.Token{}, err
	}
	// On SIGINT/SIGTERM stop the child too, and answer with the error.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "ecr-token", "--json", req.Registry.Host)
	cmd.Stdout = &out
	cmd.Stderr = c.stderr
	cmd.WaitDelay = time.Second // a grandchild holding the pipe cannot stall us
	runErr := cmd.Run()
	if err := ctx.Err(); err != nil && runErr != nil {
		// The child was killed: its "signal: killed" says nothing useful.
		why := "interrupted"
		if errors.Is(err, context.DeadlineExceeded) {
			why = "not had within the helper's time limit"
		}
		return tokencache.Token{}, fmt.Errorf("ECR token for %s %s: another tollgate process may hold the token cache lock, or AWS does not answer; retry, and run `tollgate doctor --registry %s` to see which",
			req.Registry.Host, why, req.Registry.Host)
	}
	var a tokencache.Answer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		if runErr == nil {
			runErr = errors.New("unexpected output")
		}
		return tokencache.Token{}, fmt.Errorf("%s ecr-token failed for %s: %w", bin, req.Registry.Host, runErr)
	}
	if a.Error != "" {
		return tokencache.Token{}, &tokencache.MintError{Kind: a.Kind, Message: a.Error}
	}
	if a.Username == "" || a.Password == "" {
		return tokencache.Token{}, fmt.Errorf("%s ecr-token returned no token for %s", bin, req.Registry.Host)
	}
	return tokencache.Token{Username: a.Username, Password: a.Password, ExpiresAt: a.ExpiresAt,
		Registry: req.Registry, Identity: a.Identity, Stale: a.Stale}, nil
}

// tollgateBinary finds the tollgate command: $TOLLGATE_BIN, else the
// tollgate beside this helper (both ship together), else on PATH.
func tollgateBinary() (string, error) {
	if p := os.Getenv("TOLLGATE_BIN"); p != "" {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		p := filepath.Join(filepath.Dir(exe), "tollgate")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("tollgate"); err == nil {
		return p, nil
	}
	return "", errors.New("cannot mint ECR tokens: the tollgate command is neither next to docker-credential-tollgate nor on PATH; install both from the same release, or set TOLLGATE_BIN")
}
