package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spacelift-io/tollgate/authz"
	"github.com/spacelift-io/tollgate/config"
)

func runAuthz(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("authz", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config `file` (default: $"+config.EnvConfig+", else the built-in default)")
	socket := fs.String("socket", "", "plugin unix socket `path` (default: authz.socket from the config, /run/docker/plugins/tollgate.sock)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this loopback `address` (default: authz.metrics_listen; none)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: tollgate authz [--config FILE] [--socket PATH] [--metrics ADDR]

Serves the Docker engine authorization plugin. Start it before dockerd and
name it in daemon.json ("authorization-plugins": ["tollgate"]): the daemon
then asks it about every API request, and refuses pulls and containers of
images outside the allowlist (in public mode: every pull that does not go
through the tollgate proxy), builds, loads, imports and image IDs unless the
authz.* settings allow them. While the plugin is down the daemon refuses
every request. See docs/authz.md.

flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate authz: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate authz: %v\n", err)
		return 2
	}
	if *socket != "" {
		cfg.Authz.Socket = *socket
	}
	if *metricsAddr != "" {
		cfg.Authz.MetricsListen = *metricsAddr
	}
	if !strings.HasSuffix(cfg.Authz.Socket, ".sock") {
		fmt.Fprintf(stderr, "tollgate authz: --socket %q must end in .sock: the daemon finds /run/docker/plugins/NAME.sock as plugin NAME\n", cfg.Authz.Socket)
		return 2
	}
	policy, err := authz.NewPolicy(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate authz: %v\n", err)
		return 2
	}
	log, closeLog, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate authz: %v\n", err)
		return 2
	}
	defer closeLog()
	metrics := authz.NewMetrics()
	if cfg.Authz.MetricsListen != "" {
		ml, err := net.Listen("tcp", cfg.Authz.MetricsListen)
		if err != nil {
			fmt.Fprintf(stderr, "tollgate authz: metrics listener: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go msrv.Serve(ml)
		defer msrv.Close()
	}
	l, err := authz.Listen(cfg.Authz.Socket)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate authz: %v\n", err)
		return 1
	}
	proxyAddr, _ := cfg.ProxyAddr()
	log.Info("authz plugin serving", "socket", cfg.Authz.Socket, "mode", string(cfg.Mode), "proxy", proxyAddr, "metrics", cfg.Authz.MetricsListen)
	if err := authz.Serve(ctx, l, authz.NewHandler(policy, log, metrics)); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("authz plugin stopped", "error", err)
		fmt.Fprintf(stderr, "tollgate authz: %v\n", err)
		return 1
	}
	log.Info("authz plugin stopped")
	return 0
}
