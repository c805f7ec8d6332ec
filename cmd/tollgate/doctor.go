package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/doctor"
)

// doctorDeadline bounds a whole doctor run, whatever the per-check timeout.
const doctorDeadline = 28 * time.Second

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var registries refreshHosts
	configPath := fs.String("config", "", "config `file` (default: $"+config.EnvConfig+", else the built-in default)")
	fs.Var(&registries, "registry", "ECR registry `host` to try GetAuthorizationToken against (repeatable)")
	proxy := fs.String("proxy", "", "base `URL` of a tollgate proxy to probe, e.g. http://127.0.0.1:5000")
	dockerHost := fs.String("docker-host", os.Getenv("DOCKER_HOST"), "`unix://PATH` of the Docker daemon whose authorization plugin to check (default: $DOCKER_HOST, else "+doctor.DefaultDockerHost+")")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	timeout := fs.Duration("timeout", doctor.DefaultTimeout, "give up on one check after this `duration` (at most 8s)")
	verifyCache := fs.Bool("verify-cache", false, "also re-hash every blob in the proxy's cache and remove damaged ones (slow: reads the whole cache; stop the proxy first)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: tollgate doctor [--registry HOST]... [--proxy URL] [--json]

Checks, on this host, what tollgate needs and says in plain words what works
and what to fix: the config file and its allowlist, $%s
and its permissions, the token cache directory, the credential helper (on
PATH, named by the docker config), IMDSv2, the AWS credential chain and its
identity (STS), ECR GetAuthorizationToken for each --registry, the proxy
at --proxy, and whether the Docker daemon at --docker-host uses the tollgate
authz plugin. Each check gives up after --timeout; the whole run ends
within 30 seconds (--verify-cache, which reads the whole proxy cache,
comes on top). Exit status: 0 when every check passed (warnings and
skipped checks do not fail), 1 when any failed, 2 on a usage error.

flags:
`, dockerconfig.EnvConfigDir)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate doctor: unexpected argument %q (registries are named with --registry HOST)\n", fs.Arg(0))
		return 2
	}
	if *timeout <= 0 || *timeout > 8*time.Second {
		fmt.Fprintln(stderr, "tollgate doctor: --timeout must be between 0 and 8s, so that the whole run ends within 30 seconds")
		return 2
	}
	// The doctor reports a relative config dir itself, among its checks.
	configDir, _ := dockerconfig.DirFromEnv()
	bounded, cancel := context.WithTimeout(ctx, doctorDeadline)
	defer cancel()
	rep := doctor.Run(bounded, doctor.Options{
		ConfigPath: *configPath,
		ConfigDir:  configDir,
		Registries: registries,
		ProxyURL:   *proxy,
		DockerHost: *dockerHost,
		Timeout:    *timeout,
	})
	if *verifyCache {
		// Asked for explicitly, and as long as reading the cache takes.
		r := doctor.VerifyProxyCache(ctx, *configPath)
		rep.Checks = append(rep.Checks, r)
		if r.Status == doctor.StatusFail {
			rep.OK = false
		}
	}
	if *asJSON {
		if err := doctor.WriteJSON(stdout, rep); err != nil {
			fmt.Fprintf(stderr, "tollgate doctor: %v\n", err)
			return 1
		}
	} else {
		doctor.WriteText(stdout, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}
