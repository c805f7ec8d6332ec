package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/internal/helperlog"
)

// runECRToken is the token engine's door for docker-credential-tollgate on a
// cache miss (--json), and a way for operators to see what the helper would
// get. It uses the same cache, lock and settings as the helper.
func runECRToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ecr-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config `file` (default: $"+config.EnvConfig+", else the built-in default)")
	asJSON := fs.Bool("json", false, "print a JSON answer (token or error), as docker-credential-tollgate reads it")
	refresh := fs.Bool("refresh", false, "ignore this process's memory and read the cache under its lock (mints only inside the refresh margin)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: tollgate ecr-token [--config FILE] [--json] [--refresh] HOST

Prints the ECR registry token for HOST from the shared token cache, minting
one from the host's AWS credentials when the cache has none with more than the
refresh margin left. Without --json it prints the token's identity and expiry
on stderr and the password on stdout. Exit status 0 on success, 1 on failure
(the one-line reason names the fix), 2 on a usage error.

flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	host := fs.Arg(0)
	log, closeLog := helperlog.FromEnv("tollgate ecr-token", stderr)
	defer closeLog()

	tok, err := ecrToken(ctx, *configPath, host, *refresh, log)
	if *asJSON {
		a := tokencache.Answer{Username: tok.Username, Password: tok.Password, ExpiresAt: tok.ExpiresAt,
			Identity: tok.Identity, Stale: tok.Stale}
		if err != nil {
			a = tokencache.Answer{Error: err.Error(), Kind: tokencache.KindName(err)}
		}
		_ = json.NewEncoder(stdout).Encode(a)
	} else if err == nil {
		fmt.Fprintf(stderr, "%s: identity %s, expires %s (%s left)\n", tok.Registry.Host, tok.Identity,
			tok.ExpiresAt.Format(time.RFC3339), time.Until(tok.ExpiresAt).Round(time.Minute))
		fmt.Fprintln(stdout, tok.Password)
	} else {
		fmt.Fprintf(stderr, "tollgate ecr-token: %v\n", err)
	}
	if err != nil {
		return 1
	}
	return 0
}

func ecrToken(ctx context.Context, configPath, host string, refresh bool, log *slog.Logger) (ecr.Token, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return ecr.Token{}, err
	}
	engine, err := ecr.NewEngine(ecr.Options{
		CacheDir:      cfg.ECR.CacheDir,
		RefreshMargin: cfg.ECR.RefreshMargin,
		Registries:    cfg.ECR.Registries,
		Logger:        log,
	})
	if err != nil {
		return ecr.Token{}, err
	}
	if refresh {
		return engine.Refresh(ctx, host)
	}
	return engine.Token(ctx, host)
}
