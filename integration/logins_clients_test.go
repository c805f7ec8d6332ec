package integration

// needs: docker-registry apache2-utils skopeo docker.io containerd
//
// Real clients pulling from a real password-protected registry (Debian's
// docker-registry with htpasswd, started by integration/harness) with a login
// that lives only in the SPACELIFT_DOCKER_CONFIG_DIR, served by the real
// docker-credential-tollgate: skopeo through an auth file's credHelpers, and
// a real Docker engine whose client config names tollgate as credsStore.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// loginsRun runs a client command with env, bounded in time, and returns its
// combined output and error.
func loginsRun(t *testing.T, timeout time.Duration, env map[string]string, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = loginsEnv(env)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within %v:\n%s", name, args, timeout, out.String())
	}
	return out.String(), err
}

// loginsDenied reports whether a client's output says the registry refused
// it for lack of credentials (and not, say, a network error).
func loginsDenied(out string) bool {
	o := strings.ToLower(out)
	return strings.Contains(o, "unauthorized") || strings.Contains(o, "authentication required") || strings.Contains(o, "no basic auth credentials")
}

// loginsRegistry starts an htpasswd-protected registry holding team/app:v1.
func loginsRegistry(t *testing.T) (*harness.Registry, harness.Image) {
	t.Helper()
	reg := harness.StartRegistry(t, harness.RegistryOptions{Username: "puller", Password: "pw:with:colons-" + t.Name()})
	img := reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 2, LayerSize: 4096})
	return reg, img
}

func TestLoginsSkopeoCredHelpers(t *testing.T) {
	reg, img := loginsRegistry(t)
	w := newLoginsWorld(t)
	w.writeConfig(`{"auths": {"` + reg.Host + `": {"auth": "` + basicAuth(reg.Username, reg.Password) + `"}}}`)

	sk := harness.NewSkopeo(t)
	sk.Env = []string{"PATH=" + w.env["PATH"], "SPACELIFT_DOCKER_CONFIG_DIR=" + w.configDir, "TOLLGATE_CACHE_DIR=" + w.env["TOLLGATE_CACHE_DIR"]}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The registry refuses anonymous pulls (the auth file is empty).
	if _, _, err := sk.Pull(ctx, t, img.Ref(), false); err == nil || !loginsDenied(err.Error()) {
		t.Fatalf("anonymous pull: %v; want an authentication failure", err)
	}
	// With tollgate named in credHelpers, the config-dir login is used.
	sk.WriteAuthFile(t, map[string]any{"credHelpers": map[string]string{reg.Host: "tollgate"}})
	_, digest, err := sk.Pull(ctx, t, img.Ref(), false)
	if err != nil {
		t.Fatalf("skopeo pull through tollgate: %v", err)
	}
	if digest != img.Digest {
		t.Fatalf("pulled manifest %s, want %s", digest, img.Digest)
	}
	// Erase the login from the config dir: the same pull now fails.
	if r := w.helper("erase", reg.Host); r.code != 0 {
		t.Fatalf("erase: %d %s", r.code, r.stdout)
	}
	if _, _, err := sk.Pull(ctx, t, img.Ref(), false); err == nil || !loginsDenied(err.Error()) {
		t.Fatalf("pull after the login was erased: %v; want an authentication failure", err)
	}
}

func TestLoginsDockerCredsStore(t *testing.T) {
	harness.RequireRoot(t, "dockerd and containerd run as root")
	// Debian's docker CLI, the engine's own version.
	docker := "/usr/bin/docker"
	if _, err := os.Stat(docker); err != nil {
		harness.RequireCommands(t, "docker")
		docker = "docker"
	}
	reg, img := loginsRegistry(t)
	w := newLoginsWorld(t)
	w.writeConfig(`{"auths": {"` + reg.Host + `": {"auth": "` + basicAuth(reg.Username, reg.Password) + `"}}}`)

	dockerConfig := t.TempDir()
	clientConfig := filepath.Join(dockerConfig, "config.json")
	if err := os.WriteFile(clientConfig, []byte(`{"credsStore": "tollgate"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	engine := harness.StartDocker(t, harness.DockerOptions{ConfigDir: dockerConfig})
	env := map[string]string{}
	for k, v := range w.env {
		env[k] = v
	}
	env["DOCKER_CONFIG"] = dockerConfig
	env["DOCKER_HOST"] = engine.Host
	image := img.Ref()
	dockerDo := func(stdin string, args ...string) (string, error) {
		return loginsRun(t, 3*time.Minute, env, stdin, docker, args...)
	}

	// The login lives only in the config dir: docker pull gets it from tollgate.
	if out, err := dockerDo("", "pull", image); err != nil {
		t.Fatalf("docker pull with credsStore tollgate: %v\n%s", err, out)
	}
	if digests, err := engine.RepoDigests(context.Background(), image); err != nil || len(digests) != 1 || !strings.HasSuffix(digests[0], "@"+img.Digest) {
		t.Fatalf("pulled image: %v %v, want digest %s", digests, err, img.Digest)
	}

	// docker logout erases it from the config dir; the pull then fails.
	if out, err := dockerDo("", "logout", reg.Host); err != nil {
		t.Fatalf("docker logout: %v\n%s", err, out)
	}
	if _, _, ok := w.lookup(reg.Host); ok {
		t.Fatal("docker logout left the login in the config dir")
	}
	if out, err := dockerDo("", "rmi", image); err != nil {
		t.Fatalf("docker rmi: %v\n%s", err, out)
	}
	if out, err := dockerDo("", "pull", image); err == nil || !loginsDenied(out) {
		t.Fatalf("pull without a login: %v; want an authentication failure:\n%s", err, out)
	}

	// docker login stores through tollgate into the config dir (not into
	// DOCKER_CONFIG), and pulls work again.
	if out, err := dockerDo(reg.Password, "login", "--username", reg.Username, "--password-stdin", reg.Host); err != nil {
		t.Fatalf("docker login with credsStore tollgate: %v\n%s", err, out)
	}
	if u, p, ok := w.lookup(reg.Host); !ok || u != reg.Username || p != reg.Password {
		t.Fatalf("docker login did not land in the config dir: %q %v", u, ok)
	}
	if data, _ := os.ReadFile(clientConfig); strings.Contains(string(data), basicAuth(reg.Username, reg.Password)) || strings.Contains(string(data), reg.Password) {
		t.Fatalf("docker wrote the secret to its own config:\n%s", data)
	}
	if out, err := dockerDo("", "pull", image); err != nil {
		t.Fatalf("docker pull after docker login: %v\n%s", err, out)
	}

	// The config dir used as docker's own config with credsStore tollgate:
	// docker would overwrite what tollgate stores, so the login fails loudly
	// instead of being lost.
	w.writeConfig(`{"credsStore": "tollgate"}`)
	env["DOCKER_CONFIG"] = w.configDir
	out, err := dockerDo(reg.Password, "login", "--username", reg.Username, "--password-stdin", reg.Host)
	if err == nil || !strings.Contains(out, "point SPACELIFT_DOCKER_CONFIG_DIR at a separate directory") {
		t.Fatalf("docker login into the shared config: %v\n%s", err, out)
	}
}

// lookup reads the config dir's login for host with the helper's own code
// path (docker-credential-tollgate get).
func (w *loginsWorld) lookup(host string) (user, secret string, ok bool) {
	w.t.Helper()
	if r := w.helper("get", host); r.code != 0 {
		return "", "", false
	}
	u, s := w.get(host)
	return u, s, true
}
