package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Containerd is a containerd daemon on a private socket, with its own root
// and state directories, the CRI plugin disabled and the native (plain
// copy) snapshotter, so it runs in a container without overlayfs.
type Containerd struct {
	// Address is the path of its gRPC unix socket.
	Address string
	// Namespace is the containerd namespace Ctr uses.
	Namespace        string
	Root, State, Dir string
	Process          *Process
}

// StartContainerd starts containerd as root and waits until it answers
// `ctr version`. It skips the test when not root.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	RequireRoot(t, "containerd")
	RequireCommands(t, "containerd", "ctr")
	dir := t.TempDir()
	sock := SocketDir(t)
	c := &Containerd{
		Address:   filepath.Join(sock, "containerd.sock"),
		Namespace: "tollgate-test",
		Root:      filepath.Join(dir, "root"),
		State:     filepath.Join(sock, "state"),
		Dir:       dir,
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = %q

[metrics]
  address = ""

[plugins."io.containerd.service.v1.diff-service"]
  default = ["walking"]
`, c.Root, c.State, c.Address, c.Address+".ttrpc", filepath.Join(sock, "debug.sock"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", cfgPath, "--log-level", "info")
	cmd.Env = append(os.Environ(), LoopbackOnlyEnv()...)
	c.Process = StartProcess(t, "containerd", dir, cmd)
	c.Process.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Ctr(ctx, "version")
		return err
	})
	return c
}

// Ctr runs `ctr --address ... --namespace ... ARGS` and returns its stdout.
// Pulls should name the snapshotter: `image pull --snapshotter native`.
func (c *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"--address", c.Address, "--namespace", c.Namespace}, args...)
	// ctr pulls in its own process (the transfer happens client side).
	return Run(ctx, append(os.Environ(), LoopbackOnlyEnv()...), "ctr", full...)
}

// HostsDir writes a containerd hosts directory in which registryHost (as
// it appears in image references, e.g. registry.test or docker.io), and
// each of moreHosts, is pulled through mirrorURL (http://127.0.0.1:PORT)
// only: the server is set to the mirror too, so a failing mirror never
// makes containerd go to the real host. containerd adds ?ns=<host> to
// mirror requests. It returns the directory to pass as
// `ctr image pull --hosts-dir`.
func HostsDir(t testing.TB, registryHost, mirrorURL string, moreHosts ...string) string {
	t.Helper()
	dir := t.TempDir()
	toml := fmt.Sprintf(`server = %q

[host.%q]
  capabilities = ["pull", "resolve"]
`, mirrorURL, mirrorURL)
	for _, h := range append([]string{registryHost}, moreHosts...) {
		hostDir := filepath.Join(dir, h)
		if err := os.MkdirAll(hostDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hostDir, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
