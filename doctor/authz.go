package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spacelift-io/tollgate/config"
)

// DefaultDockerHost is where dockerd listens unless DOCKER_HOST says
// otherwise.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// unixClient is an HTTP client that reaches every URL through the unix
// socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}

// checkAuthz says whether the Docker daemon at dockerHost uses tollgate's
// authorization plugin (the name authz.socket gives it) and whether the
// plugin answers. Without it the allowlist binds only what goes through
// the proxy: a warning in private mode, a failure in public mode.
func checkAuthz(ctx context.Context, cfg *config.Config, dockerHost string) Result {
	if cfg == nil {
		return Result{Status: StatusSkip, Detail: "no usable config (see the config check)"}
	}
	if dockerHost == "" {
		dockerHost = DefaultDockerHost
	}
	sock, ok := strings.CutPrefix(dockerHost, "unix://")
	if !ok {
		return Result{Status: StatusSkip, Detail: fmt.Sprintf("docker host %s is not a unix socket; only a local daemon is checked", dockerHost)}
	}
	name := strings.TrimSuffix(filepath.Base(cfg.Authz.Socket), ".sock")
	plugin := probePlugin(ctx, cfg.Authz.Socket)

	plugins, err := daemonAuthzPlugins(ctx, sock)
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
		return Result{Status: StatusSkip, Detail: fmt.Sprintf("no Docker daemon at %s", dockerHost)}
	case errors.Is(err, os.ErrPermission):
		return Result{Status: StatusWarn, Detail: fmt.Sprintf("cannot reach the Docker daemon at %s: permission denied", dockerHost),
			Fix: "run tollgate doctor as root or as a member of the docker group to check the daemon's authorization plugin"}
	case err != nil && plugin != nil:
		return Result{Status: StatusFail, Detail: fmt.Sprintf("the Docker daemon at %s did not answer (%v) and the plugin does not answer on %s (%v)", dockerHost, err, cfg.Authz.Socket, plugin),
			Fix: "a daemon whose authorization plugin is down waits about 30 s and then refuses every request: start tollgate authz (systemctl start tollgate-authz)"}
	case err != nil:
		return Result{Status: StatusFail, Detail: fmt.Sprintf("the Docker daemon at %s did not answer: %v", dockerHost, err), Fix: "check that dockerd runs (systemctl status docker)"}
	}
	if !slices.Contains(plugins, name) {
		r := Result{Status: StatusWarn,
			Detail: fmt.Sprintf("the Docker daemon at %s does not use the tollgate authorization plugin (its authorization plugins: %v): the allowlist binds only pulls through the proxy", dockerHost, plugins),
			Fix:    fmt.Sprintf(`add "authorization-plugins": [%q] to /etc/docker/daemon.json, run tollgate authz before docker.service (examples/systemd/tollgate-authz.service), restart docker`, name)}
		if cfg.Mode == config.ModePublic {
			r.Status = StatusFail
			r.Detail += "; in public mode the daemon can then pull private images with its users' credentials"
		}
		return r
	}
	if plugin != nil {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("the Docker daemon uses plugin %s but nothing answers on %s: %v; the daemon refuses every request", name, cfg.Authz.Socket, plugin),
			Fix: "start tollgate authz (systemctl start tollgate-authz) and see its log"}
	}
	return Result{Status: StatusOK, Detail: fmt.Sprintf("the Docker daemon at %s uses authorization plugin %s, which answers on %s", dockerHost, name, cfg.Authz.Socket)}
}

// daemonAuthzPlugins asks dockerd (GET /info) which authorization plugins
// it uses.
func daemonAuthzPlugins(ctx context.Context, sock string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/info", nil)
	if err != nil {
		return nil, err
	}
	resp, err := unixClient(sock).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET /info: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var info struct {
		Plugins struct{ Authorization []string }
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("GET /info: %w", err)
	}
	return info.Plugins.Authorization, nil
}

// probePlugin activates the plugin on its socket as the daemon does; nil
// when it answers as an authz plugin.
func probePlugin(ctx context.Context, sock string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin/Plugin.Activate", nil)
	if err != nil {
		return err
	}
	resp, err := unixClient(sock).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var act struct{ Implements []string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&act); err != nil || !slices.Contains(act.Implements, "authz") {
		return fmt.Errorf("%s does not answer as an authorization plugin (%s)", sock, resp.Status)
	}
	return nil
}
