package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// DockerOptions configures a Docker engine.
type DockerOptions struct {
	// Containerd to use; when nil, StartDocker starts one for it.
	Containerd *Containerd
	// ConfigDir is the client's DOCKER_CONFIG (config.json with auths,
	// credsStore, credHelpers). When empty a fresh empty one is made.
	ConfigDir string
	// ClientEnv is added to the environment of docker CLI commands, e.g. a
	// PATH that holds docker-credential-tollgate and SPACELIFT_DOCKER_CONFIG_DIR.
	ClientEnv []string
	// RegistryMirrors is passed as --registry-mirror (Docker Hub mirrors).
	RegistryMirrors []string
	// AuthorizationPlugins go to daemon.json's authorization-plugins: names
	// of plugin sockets under /run/docker/plugins/ (NAME.sock), which must
	// answer before StartDocker's first `docker version`.
	AuthorizationPlugins []string
}

// Docker is a dockerd on a private socket with vfs storage and no bridge or
// iptables, so it runs inside a container, and with a resolver on loopback
// (ResolvConf) so its DNS lookups never leave the machine. Plain-http
// registries on 127.0.0.0/8 work: Docker treats loopback registries as
// insecure.
type Docker struct {
	// Host is the DOCKER_HOST value: unix:///.../docker.sock.
	Host       string
	ConfigDir  string
	DataRoot   string
	Containerd *Containerd
	Process    *Process
	// ResolvConf is the resolv.conf dockerd sees as /etc/resolv.conf: a
	// nameserver on loopback where nothing listens.
	ResolvConf string
	clientEnv  []string
}

// DockerdEnv names a dockerd binary to run instead of the dockerd on PATH
// (Debian's docker.io): a newer engine built from source, to see what it
// passes to authorization plugins (docs/authz.md, "Capturing from another
// engine").
const DockerdEnv = "TOLLGATE_DOCKERD"

// DockerdBinary is the dockerd StartDocker runs: $TOLLGATE_DOCKERD, else
// dockerd from PATH.
func DockerdBinary() string {
	if p := os.Getenv(DockerdEnv); p != "" {
		return p
	}
	return "dockerd"
}

// loopbackResolvConf sends DNS queries to a loopback address where nothing
// listens, so that every lookup fails at once without leaving the machine.
const loopbackResolvConf = "nameserver 127.255.255.254\noptions timeout:1 attempts:1\n"

// StartDocker starts dockerd as root and waits until `docker version`
// reaches it. It skips the test when not root.
func StartDocker(t testing.TB, opts DockerOptions) *Docker {
	t.Helper()
	RequireRoot(t, "dockerd")
	dockerd := DockerdBinary()
	RequireCommands(t, dockerd, "docker", "unshare", "mount")
	ctrd := opts.Containerd
	if ctrd == nil {
		ctrd = StartContainerd(t)
	}
	dir := t.TempDir()
	sock := SocketDir(t)
	d := &Docker{
		Host:       "unix://" + filepath.Join(sock, "docker.sock"),
		ConfigDir:  opts.ConfigDir,
		DataRoot:   filepath.Join(dir, "data"),
		Containerd: ctrd,
		clientEnv:  opts.ClientEnv,
	}
	if d.ConfigDir == "" {
		d.ConfigDir = filepath.Join(dir, "client-config")
		if err := os.MkdirAll(d.ConfigDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.ConfigDir, "config.json"), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A private daemon.json, so the machine's /etc/docker/daemon.json is never read.
	daemonCfg := map[string]any{}
	if len(opts.RegistryMirrors) > 0 {
		daemonCfg["registry-mirrors"] = opts.RegistryMirrors
	}
	if len(opts.AuthorizationPlugins) > 0 {
		daemonCfg["authorization-plugins"] = opts.AuthorizationPlugins
	}
	b, _ := json.Marshal(daemonCfg)
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d.ResolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(d.ResolvConf, []byte(loopbackResolvConf), 0o644); err != nil {
		t.Fatal(err)
	}
	// dockerd looks registry names up itself, whatever its proxy settings:
	// docker.io when it pulls through a mirror, any other registry host to
	// see whether it is insecure. So it runs in a private mount namespace
	// whose /etc/resolv.conf is ResolvConf, and no query leaves loopback.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, d.ResolvConf,
		dockerd,
		"--config-file", daemonJSON,
		"--storage-driver", "vfs",
		"--bridge", "none",
		"--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"-H", d.Host,
		"--data-root", d.DataRoot,
		"--exec-root", filepath.Join(sock, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--containerd", ctrd.Address,
		"--containerd-namespace", "tollgate-dockerd",
		"--containerd-plugins-namespace", "tollgate-dockerd-plugins",
	)
	cmd.Env = append(append(os.Environ(), LoopbackOnlyEnv()...), "DOCKER_CONFIG="+filepath.Join(dir, "daemon-home"))
	d.Process = StartProcess(t, "dockerd", dir, cmd)
	d.Process.WaitFor(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := d.Run(ctx, "version", "--format", "{{.Server.Version}}")
		return err
	})
	return d
}

// Env is the environment docker CLI commands run with: the test's own plus
// DOCKER_HOST, DOCKER_CONFIG and DockerOptions.ClientEnv.
func (d *Docker) Env() []string {
	env := append(os.Environ(), "DOCKER_HOST="+d.Host, "DOCKER_CONFIG="+d.ConfigDir)
	return append(env, d.clientEnv...)
}

// Run runs the docker CLI against this engine and returns its stdout.
func (d *Docker) Run(ctx context.Context, args ...string) (string, error) {
	return Run(ctx, d.Env(), "docker", args...)
}

// ImageID returns the image ID (config digest) docker has for ref.
func (d *Docker) ImageID(ctx context.Context, ref string) (string, error) {
	out, err := d.Run(ctx, "image", "inspect", "--format", "{{.ID}}", ref)
	if err != nil {
		return "", err
	}
	var id string
	if _, err := fmt.Sscan(out, &id); err != nil {
		return "", fmt.Errorf("docker image inspect %s: unexpected output %q", ref, out)
	}
	return id, nil
}

// RepoDigests returns the repository digests docker recorded for ref
// (name@sha256:... of the manifest it pulled).
func (d *Docker) RepoDigests(ctx context.Context, ref string) ([]string, error) {
	out, err := d.Run(ctx, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if err != nil {
		return nil, err
	}
	var ds []string
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		return nil, fmt.Errorf("docker image inspect %s: unexpected output %q", ref, out)
	}
	return ds, nil
}
