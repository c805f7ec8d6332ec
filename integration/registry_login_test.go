package integration

// needs: docker-registry apache2-utils skopeo docker.io containerd
//
// Small starters for the real parts the login tests use: Debian's
// docker-registry behind htpasswd basic auth on a loopback port, an image
// seeded into it with skopeo from an OCI layout generated here, and a
// private containerd + dockerd pair. They are written for the login tests
// (owner: logins) and are candidates for integration/harness.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loginsNeed returns the path of a Debian-packaged program the test needs.
// Missing: the test fails as root (scripts/install-test-deps.sh installs it)
// and skips, saying so, when not root (nothing could be installed).
func loginsNeed(t testing.TB, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s (Debian package %s) is not installed and cannot be installed as a non-root user", prog, pkg)
	}
	t.Fatalf("%s not found: install Debian package %s (scripts/install-test-deps.sh)", prog, pkg)
	return ""
}

// loginsFreeAddr returns a loopback address with a port that was free a
// moment ago.
func loginsFreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// loginsStartProcess starts cmd with output to a log file, stops it (SIGTERM,
// then SIGKILL) at cleanup, and returns the log path for diagnostics.
func loginsStartProcess(t testing.TB, name string, cmd *exec.Cmd) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return logPath
}

// loginsWaitFor polls ok until it is true or the deadline passes.
func loginsWaitFor(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// authRegistry is a running docker-registry that requires a login.
type authRegistry struct {
	Addr     string // 127.0.0.1:PORT
	User     string
	Password string
}

// startAuthRegistry starts Debian's docker-registry on a loopback port with
// htpasswd (bcrypt) basic auth for one random user.
func startAuthRegistry(t testing.TB) *authRegistry {
	t.Helper()
	bin := loginsNeed(t, "docker-registry", "docker-registry")
	htpasswd := loginsNeed(t, "htpasswd", "apache2-utils")
	r := &authRegistry{Addr: loginsFreeAddr(t), User: "puller", Password: "pw:" + loginsRandHex(t, 8)}
	dir := t.TempDir()
	out, err := exec.Command(htpasswd, "-Bbn", r.User, r.Password).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	htfile := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htfile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
auth:
  htpasswd:
    realm: tollgate-test
    path: %s
`, filepath.Join(dir, "data"), r.Addr, htfile)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	loginsStartProcess(t, "docker-registry", exec.Command(bin, "serve", cfgPath))
	loginsWaitFor(t, "docker-registry on "+r.Addr, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	return r
}

func loginsRandHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// loginsPolicy writes a containers policy.json that accepts any image, for
// skopeo runs that must not depend on the machine's /etc/containers.
func loginsPolicy(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(p, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ociLayout writes a one-layer linux/amd64 image as an OCI layout in a new
// directory and returns the directory; the image is tagged tag.
func ociLayout(t testing.TB, tag string) string {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(blobs, h), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h, len(b)
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	content := []byte("tollgate login test " + loginsRandHex(t, 16) + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	diffSum := sha256.Sum256(tarBuf.Bytes())
	var gzBuf bytes.Buffer
	gz := gzip.NewWriter(&gzBuf)
	gz.Write(tarBuf.Bytes())
	gz.Close()
	layerDigest, layerSize := put(gzBuf.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Cmd": []string{"/hello.txt"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffSum[:])}},
	})
	configDigest, configSize := put(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest, "size": layerSize}},
	})
	manifestDigest, manifestSize := put(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": manifestSize,
			"annotations": map[string]string{"org.opencontainers.image.ref.name": tag},
		}},
	})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// seedImage pushes a generated image to the registry as repo:tag, with
// skopeo and the registry's credentials given on the command line.
func (r *authRegistry) seedImage(t testing.TB, repo, tag string) {
	t.Helper()
	skopeo := loginsNeed(t, "skopeo", "skopeo")
	layout := ociLayout(t, tag)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skopeo, "--policy", loginsPolicy(t), "copy", "--dest-tls-verify=false",
		"--dest-creds", r.User+":"+r.Password, "oci:"+layout+":"+tag, "docker://"+r.Addr+"/"+repo+":"+tag)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "REGISTRY_AUTH_FILE="+filepath.Join(t.TempDir(), "none.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seed %s/%s:%s: %v\n%s", r.Addr, repo, tag, err, out)
	}
}

// dockerEngine is a private containerd + dockerd pair.
type dockerEngine struct {
	Host string // unix:///…/docker.sock, for DOCKER_HOST
}

// startDockerEngine starts containerd (CRI plugin disabled) and dockerd
// (vfs storage, no bridge, no iptables) on private sockets and directories.
// Root only.
func startDockerEngine(t testing.TB, insecureRegistries ...string) *dockerEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: dockerd and containerd run as root")
	}
	containerd := loginsNeed(t, "containerd", "containerd")
	dockerd := loginsNeed(t, "dockerd", "docker.io")
	// Unix socket paths are limited to 108 bytes: keep them short.
	dir, err := os.MkdirTemp("", "tg-dk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctdSock := filepath.Join(dir, "ctd.sock")
	ctdCfg := filepath.Join(dir, "containerd.toml")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "ctd-root"), filepath.Join(dir, "ctd-state"), ctdSock)
	if err := os.WriteFile(ctdCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	loginsStartProcess(t, "containerd", exec.Command(containerd, "--config", ctdCfg))
	loginsWaitFor(t, "containerd socket", 30*time.Second, func() bool {
		c, err := net.Dial("unix", ctdSock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	args := []string{
		"--config-file", daemonJSON,
		"--containerd", ctdSock,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", "unix://" + sock,
		"--storage-driver", "vfs",
		"--bridge", "none",
		"--iptables=false",
		"--ip6tables=false",
	}
	for _, r := range insecureRegistries {
		args = append(args, "--insecure-registry", r)
	}
	loginsStartProcess(t, "dockerd", exec.Command(dockerd, args...))
	e := &dockerEngine{Host: "unix://" + sock}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	loginsWaitFor(t, "dockerd API", 60*time.Second, func() bool {
		resp, err := client.Get("http://docker/_ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return e
}

// dockerCLI returns Debian's docker client (the engine's own version).
func dockerCLI(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	return loginsNeed(t, "docker", "docker.io")
}

// loginsEnv returns os.Environ() without anything that could point a
// process at real AWS, a real cache or a real docker config (AWS_*,
// TOLLGATE_*, SPACELIFT_*, DOCKER_*, REGISTRY_AUTH_FILE), with the given
// variables set (an empty value leaves the variable out).
func loginsEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		switch {
		case strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "TOLLGATE_"), strings.HasPrefix(k, "SPACELIFT_"),
			strings.HasPrefix(k, "DOCKER_"), k == "REGISTRY_AUTH_FILE":
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}
