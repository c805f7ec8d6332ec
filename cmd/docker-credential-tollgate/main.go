// Command docker-credential-tollgate is the docker credential helper: ECR
// registry tokens minted from the host's AWS credentials and cached, and
// logins from the docker config directory for every other registry. It only
// wires the packages together; see credhelper and ecr.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spacelift-io/tollgate/credhelper"
	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/ecr"
	"github.com/spacelift-io/tollgate/internal/buildinfo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	credentials.Name = "docker-credential-tollgate"
	credentials.Package = "github.com/spacelift-io/tollgate"
	credentials.Version = buildinfo.String()
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: %s store|get|erase|list|version\n", credentials.Name)
		return 1
	}
	switch args[0] {
	case "-v", "--version":
		_ = credentials.PrintVersion(stdout)
		return 0
	case "-h", "--help":
		fmt.Fprintf(stdout, "usage: %s store|get|erase|list|version\n", credentials.Name)
		return 0
	}

	log, closeLog := newLogger(stderr)
	defer closeLog()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var engine *ecr.Engine
	// Building the engine does no I/O; AWS configuration is loaded only when
	// the disk cache misses, so a warm get stays a file read.
	opts, err := engineOptions(log)
	if err == nil {
		engine, err = ecr.NewEngine(opts)
	}
	if err != nil {
		fmt.Fprintln(stdout, err)
		fmt.Fprintln(stderr, err)
		return 1
	}
	logins := dockerconfig.FromEnv("tollgate") // SPACELIFT_DOCKER_CONFIG_DIR
	helper := credhelper.NewHelper(&credhelper.Resolver{ECR: engine, Logins: logins, Log: log}).WithContext(ctx)
	if err := credentials.HandleCommand(helper, args[0], stdin, stdout); err != nil {
		// The protocol puts the message on stdout; docker shows it.
		fmt.Fprintln(stdout, err)
		if !credentials.IsErrCredentialsNotFound(err) {
			log.Error(args[0]+" failed", "err", err.Error())
		}
		return 1
	}
	return 0
}

// newLogger logs to $TOLLGATE_LOG_FILE (appended, 0600) if set, else to
// stderr; the level is $TOLLGATE_LOG_LEVEL (debug, info, warn, error;
// default warn on stderr, info in a file).
func newLogger(stderr io.Writer) (*slog.Logger, func()) {
	var w io.Writer = stderr
	level := slog.LevelWarn
	closeFn := func() {}
	if path := os.Getenv("TOLLGATE_LOG_FILE"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "%s: cannot open TOLLGATE_LOG_FILE, logging to stderr: %v\n", credentials.Name, err)
		} else {
			w, level, closeFn = f, slog.LevelInfo, func() { _ = f.Close() }
		}
	}
	if v := os.Getenv("TOLLGATE_LOG_LEVEL"); v != "" {
		_ = level.UnmarshalText([]byte(strings.ToUpper(v)))
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("prog", credentials.Name, "pid", os.Getpid()), closeFn
}
