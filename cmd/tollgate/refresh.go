package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/ecr"
	"github.com/spacelift-io/tollgate/refresh"
)

// Exit statuses of tollgate refresh.
const (
	refreshOK     = 0 // every registry refreshed and written
	refreshFailed = 1 // some registry failed (the others were written)
	refreshUsage  = 2 // bad flags or configuration
)

// refreshHosts is a repeatable string flag.
type refreshHosts []string

var _ flag.Value = (*refreshHosts)(nil)

func (s *refreshHosts) String() string { return strings.Join(*s, ",") }
func (s *refreshHosts) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func runRefresh(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("refresh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var registries refreshHosts
	configPath := fs.String("config", "", "config `file` (default: $"+config.EnvConfig+", else the built-in default)")
	fs.Var(&registries, "registry", "ECR registry `host` to refresh (repeatable), in addition to refresh.registries and the ECR hosts already in the docker config")
	output := fs.String("output", "", "write to this `file` instead of $"+dockerconfig.EnvConfigDir+"/config.json")
	format := fs.String("format", "docker-config", "what to write: docker-config or kubernetes-secret")
	namespace := fs.String("namespace", "", "namespace of the Kubernetes Secret (--format kubernetes-secret)")
	name := fs.String("name", "", "name of the Kubernetes Secret (--format kubernetes-secret; required)")
	loop := fs.Bool("loop", false, "keep running: refresh each token ahead of its expiry, with jitter, until SIGTERM")
	margin := fs.Duration("margin", 0, "refresh a token once it has less than this `duration` left (default: ecr.refresh_margin, 1h)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up on one registry after this `duration`")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: tollgate refresh [flags]

Mints (or reuses, while it is outside the refresh margin) a token for each ECR
registry and writes it as an auths entry (auth = base64 of AWS:<token>) into
$%s/config.json, under the credential helper's lock,
keeping every other entry. Prints one line per registry: host, outcome, expiry.
Exit status: 0 when every registry was refreshed, 1 when any failed (the others
are still written; a failed registry's entry is left as it was), 2 on a usage
or config error.

flags:
`, dockerconfig.EnvConfigDir)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tollgate refresh: "+format+"\n", a...)
		return refreshUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q (registries are named with --registry HOST)", fs.Arg(0))
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return usageErr("%v", err)
	}
	if *margin < 0 || *timeout <= 0 {
		return usageErr("--margin must not be negative and --timeout must be positive")
	}
	if *margin == 0 {
		*margin = cfg.ECR.RefreshMargin
	}
	named := append(append([]string{}, cfg.Refresh.Registries...), registries...)
	if _, err := refresh.CanonicalHosts(named); err != nil {
		return usageErr("%v; refresh writes tokens for Amazon ECR registries (ACCOUNT.dkr.ecr.REGION.amazonaws.com, public.ecr.aws)", err)
	}

	logger, closeLog := refreshLogger(cfg.Log, stderr, *loop)
	defer closeLog()
	dir, err := dockerconfig.DirFromEnv()
	if err != nil {
		return usageErr("%v", err)
	}
	var store *dockerconfig.Store
	if dir != "" {
		store = &dockerconfig.Store{Dir: dir, Self: "tollgate", Warnings: stderr}
	}
	var sink refresh.Sink
	var sources []refresh.HostSource
	if store != nil {
		sources = append(sources, refresh.ConfigDir{Store: store})
	}
	lines := stdout
	switch *format {
	case "docker-config":
		if *name != "" || *namespace != "" {
			return usageErr("--name and --namespace go with --format kubernetes-secret")
		}
		switch {
		case *output != "":
			s := refresh.ConfigFile{Path: *output}
			sink, sources = s, append(sources, s)
		case store != nil:
			sink = refresh.ConfigDir{Store: store}
		default:
			return usageErr("%v; or name a docker config to write with --output FILE", dockerconfig.ErrNoConfigDir)
		}
	case "kubernetes-secret":
		if *name == "" {
			return usageErr("--format kubernetes-secret needs --name (the Secret's name)")
		}
		if err := refresh.ValidateSecretName(*name, *namespace); err != nil {
			return usageErr("%v", err)
		}
		s := refresh.KubernetesSecret{Name: *name, Namespace: *namespace, Path: *output, Out: stdout}
		sink = s
		if *output == "" {
			if *loop {
				return usageErr("--loop with --format kubernetes-secret needs --output FILE")
			}
			lines = stderr // stdout carries the manifest
		} else {
			sources = append(sources, s)
		}
	default:
		return usageErr("unknown --format %q: docker-config or kubernetes-secret", *format)
	}

	engine, err := ecr.NewEngine(ecr.Options{
		CacheDir:      cfg.ECR.CacheDir,
		RefreshMargin: *margin,
		Registries:    cfg.ECR.Registries,
		Logger:        logger,
	})
	if err != nil {
		// Every NewEngine error is one of settings: ecr.registries, the
		// cache directory, TOLLGATE_ECR_RETRY_BUDGET.
		return usageErr("%v", err)
	}
	r := &refresh.Refresher{
		Minter:     refresh.Engine{Engine: engine},
		Sink:       sink,
		Registries: named,
		Sources:    sources,
		Timeout:    *timeout,
	}
	if *loop {
		// Nothing to refresh at all is a configuration error, not something
		// to retry forever.
		if _, err := r.Hosts(ctx); errors.Is(err, refresh.ErrNoRegistries) {
			return usageErr("%v", err)
		}
		r.Logger = logger
		logger.Info("refresh loop started", "to", sink.String(), "margin", *margin)
		if err := r.Loop(ctx, refresh.LoopOptions{Margin: *margin}); err != nil {
			fmt.Fprintf(stderr, "tollgate refresh: %v\n", err)
			return refreshFailed
		}
		return refreshOK
	}
	rep, err := r.Once(ctx)
	if errors.Is(err, refresh.ErrNoRegistries) {
		return usageErr("%v", err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tollgate refresh: %v\n", err)
		return refreshFailed
	}
	printRefreshReport(lines, rep, time.Now())
	if !rep.OK() {
		return refreshFailed
	}
	return refreshOK
}

// printRefreshReport prints one line per registry: host, outcome, expiry
// (or the reason it failed).
func printRefreshReport(w io.Writer, rep refresh.Report, now time.Time) {
	width := 0
	for _, res := range rep.Results {
		width = max(width, len(res.Host))
	}
	for _, res := range rep.Results {
		switch {
		case res.Err != nil:
			fmt.Fprintf(w, "%-*s  failed       %s\n", width, res.Host, refreshOneLine(res.Err.Error()))
		case rep.WriteErr != nil:
			fmt.Fprintf(w, "%-*s  not written  %s\n", width, res.Host, refreshOneLine(rep.WriteErr.Error()))
		default:
			fmt.Fprintf(w, "%-*s  ok           expires %s (in %s)\n", width, res.Host,
				res.ExpiresAt.UTC().Format(time.RFC3339), res.ExpiresAt.Sub(now).Round(time.Minute))
		}
	}
}

func refreshOneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// refreshLogger builds the logger of refresh from the config's log section
// (newLogger, shared with the proxy). A one-shot run prints its own report
// lines, so at the info level it logs only warnings; a debug level, which an
// operator sets to see why a refresh fails, is kept. A log file that cannot
// be opened is reported and stderr used instead: a refresh must not fail for
// its log.
func refreshLogger(c config.Log, stderr io.Writer, loop bool) (*slog.Logger, func()) {
	var level slog.Level
	if !loop && (level.UnmarshalText([]byte(c.Level)) != nil || level > slog.LevelDebug && level < slog.LevelWarn) {
		c.Level = "warn"
	}
	log, closeFn, err := newLogger(c, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate refresh: %v; logging to stderr\n", err)
		c.File = ""
		log, closeFn, err = newLogger(c, stderr)
	}
	if err != nil { // an invalid level: config validation refuses those
		log, closeFn = slog.New(slog.NewTextHandler(stderr, nil)), func() {}
	}
	return log, closeFn
}
