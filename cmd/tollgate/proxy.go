package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/spacelift-io/tollgate/allowlist"
	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/credhelper"
	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/ecr"
	"github.com/spacelift-io/tollgate/proxy"
	"github.com/spacelift-io/tollgate/proxy/cache"
	"github.com/spacelift-io/tollgate/proxy/fleet"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

func runProxy(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config `file` (default: $"+config.EnvConfig+", else the built-in default)")
	listen := fs.String("listen", "", "listen `address` host:port (default: proxy.listen from the config, 127.0.0.1:5000)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: tollgate proxy [--config FILE] [--listen ADDR]

Runs the pull-through registry proxy: clients pull ADDR/<registry-host>/<repo>:<tag>,
or use it as a registry mirror (containerd hosts.toml, podman registries.conf,
docker registry-mirrors for Docker Hub). Every pull is checked against the
allowlist; content is cached under proxy.cache.dir. See docs/proxy.md.

flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate proxy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate proxy: %v\n", err)
		return 2
	}
	if *listen != "" {
		cfg.Proxy.Listen = *listen
	}
	log, closeLog, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate proxy: %v\n", err)
		return 2
	}
	defer closeLog()
	if err := serveProxy(ctx, cfg, log); err != nil {
		log.Error("proxy stopped", "error", err)
		fmt.Fprintf(stderr, "tollgate proxy: %v\n", err)
		return 1
	}
	return 0
}

// serveProxy wires the allowlist, the cache and the upstreams into a proxy
// server and runs it until ctx ends (SIGINT/SIGTERM).
func serveProxy(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	policy, err := allowlist.New(cfg.Allowlist)
	if err != nil {
		return err
	}
	endpoints, err := proxy.EndpointsFromConfig(cfg.Upstreams)
	if err != nil {
		return err
	}
	maxSize, err := config.ParseSize(cfg.Proxy.Cache.MaxSize)
	if err != nil {
		return fmt.Errorf("proxy.cache.maxsize: %w", err)
	}
	// The cache refuses, in public mode, a directory a private proxy
	// filled (checked under its lock, before it touches anything).
	copts := cache.Options{Dir: cfg.Proxy.Cache.Dir, MaxSize: maxSize, Mode: cache.ModePrivate, Logger: log}
	if cfg.Mode == config.ModePublic {
		copts.Mode = cache.ModePublic
	}
	if sh := cfg.Proxy.Shared; sh != nil && sh.Driver != "" {
		tier, err := cache.OpenDriverTier(ctx, sh.Driver, sh.Parameters)
		if err != nil {
			return fmt.Errorf("proxy.shared: %w%s", err, sharedDriverHint(sh.Driver))
		}
		copts.Shared = tier
		log.Info("shared cache tier enabled", "driver", sh.Driver)
	}
	node, peerLn, err := openFleet(ctx, cfg, log)
	if err != nil {
		return err
	}
	if node != nil {
		defer node.Close()
		copts.Fleet = node
	}
	store, err := cache.Open(ctx, copts)
	if err != nil {
		return fmt.Errorf("opening the cache in %s: %w", cfg.Proxy.Cache.Dir, err)
	}
	// The whole shutdown, server and cache fills alike, is bounded by
	// proxy.shutdown_timeout from the signal on.
	var deadline atomic.Int64
	stopWatch := context.AfterFunc(ctx, func() {
		deadline.Store(time.Now().Add(cfg.Proxy.ShutdownTimeout).UnixNano())
	})
	defer func() {
		stopWatch()
		until := time.Now().Add(time.Second)
		if d := deadline.Load(); d != 0 && time.Unix(0, d).After(until) {
			until = time.Unix(0, d)
		}
		cctx, cancel := context.WithDeadline(context.Background(), until)
		defer cancel()
		if err := store.Close(cctx); err != nil {
			log.Warn("closing the cache", "error", err)
		}
	}()
	opts := proxy.Options{
		Policy:          policy,
		Mode:            cfg.Mode,
		Endpoints:       endpoints,
		Cache:           store,
		Logger:          log,
		ShutdownTimeout: cfg.Proxy.ShutdownTimeout,
	}
	if cfg.Mode != config.ModePublic {
		creds, err := proxyCredentials(cfg, log)
		if err != nil {
			return err
		}
		opts.Credentials = creds
	}
	if node != nil {
		opts.Collectors = node.Collectors()
	}
	srv, err := proxy.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Proxy.Listen, err)
	}
	log.Info("tollgate proxy listening", "address", ln.Addr().String(), "mode", string(cfg.Mode),
		"cache_dir", cfg.Proxy.Cache.Dir, "cache_maxsize", cfg.Proxy.Cache.MaxSize, "allowlist_entries", len(cfg.Allowlist))
	if node == nil {
		return srv.Serve(ctx, ln)
	}
	// The peer listener serves until the proxy's graceful shutdown is
	// over, so peers streaming a fill this host finishes are not cut.
	pctx, stopPeers := context.WithCancel(context.WithoutCancel(ctx))
	peerDone := make(chan struct{})
	go func() {
		defer close(peerDone)
		if err := node.Serve(pctx, peerLn, store); err != nil {
			log.Error("fleet peer listener stopped", "error", err)
		}
	}()
	log.Info("fleet peer listener", "address", peerLn.Addr().String(), "advertise", cfg.Proxy.Fleet.Advertise, "lease", lease.Redact(cfg.Proxy.Fleet.Lease))
	err = srv.Serve(ctx, ln)
	stopPeers()
	<-peerDone
	return err
}

// openFleet joins the fleet proxy.fleet names, if any: the node (secret,
// lease engine) and its own peer listener, apart from the client one.
func openFleet(ctx context.Context, cfg *config.Config, log *slog.Logger) (*fleet.Node, net.Listener, error) {
	f := cfg.Proxy.Fleet
	if f == nil {
		return nil, nil, nil
	}
	if f.Overlaps(cfg.Proxy.Listen) {
		return nil, nil, fmt.Errorf("proxy.fleet.listen %s overlaps the client listener %s: give the peer listener an address of its own", f.Listen, cfg.Proxy.Listen)
	}
	node, err := fleet.Open(ctx, f, cfg.Mode, cfg.Proxy.Shared, log)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		_ = node.Close()
		return nil, nil, fmt.Errorf("proxy.fleet.listen %s: %w", f.Listen, err)
	}
	return node, ln, nil
}

// The parts wired together here implement interfaces of packages they
// cannot import without a cycle (their consumers' tests use them), so the
// compile-time checks live where they meet.
var (
	_ proxy.Policy           = (*allowlist.Policy)(nil)
	_ proxy.Credentials      = (*credhelper.Resolver)(nil)
	_ credhelper.TokenSource = (*ecr.Engine)(nil)
	_ credhelper.LoginStore  = (*dockerconfig.Store)(nil)
)

// proxyCredentials is the in-process credential source of private mode:
// ECR tokens from the token engine (shared disk cache with the helper),
// every other login from $SPACELIFT_DOCKER_CONFIG_DIR. Without a usable
// engine the proxy still serves the config-dir logins (and anonymous pulls).
func proxyCredentials(cfg *config.Config, log *slog.Logger) (proxy.Credentials, error) {
	logins, err := dockerconfig.FromEnv("tollgate")
	if err != nil {
		return nil, err
	}
	r := &credhelper.Resolver{Logins: logins, Log: log}
	engine, err := ecr.NewEngine(ecr.Options{
		CacheDir:      cfg.ECR.CacheDir,
		RefreshMargin: cfg.ECR.RefreshMargin,
		Registries:    cfg.ECR.Registries,
		Logger:        log,
	})
	if err != nil {
		log.Warn("ECR token engine unavailable; ECR pulls go upstream without credentials", "error", err)
	} else {
		r.ECR = engine
	}
	return r, nil
}

// newLogger builds the slog logger the log section asks for.
func newLogger(c config.Log, stderr io.Writer) (*slog.Logger, func(), error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	out, closeFn := stderr, func() {}
	if c.File != "" {
		f, err := os.OpenFile(c.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("log.file: %w", err)
		}
		out, closeFn = f, func() { _ = f.Close() }
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts)), closeFn, nil
	}
	return slog.New(slog.NewTextHandler(out, opts)), closeFn, nil
}
