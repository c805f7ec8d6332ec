package integration

// needs: docker-registry apache2-utils skopeo docker.io containerd
//
// Real clients pulling from a real password-protected registry with a login
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

func TestLoginsSkopeoCredHelpers(t *testing.T) {
	skopeo := loginsNeed(t, "skopeo", "skopeo")
	reg := startAuthRegistry(t)
	reg.seedImage(t, "team/app", "v1")
	w := newLoginsWorld(t)
	w.writeConfig(`{"auths": {"` + reg.Addr + `": {"auth": "` + basicAuth(reg.User, reg.Password) + `"}}}`)

	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(authFile, []byte(`{"credHelpers": {"`+reg.Addr+`": "tollgate"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	noAuth := filepath.Join(dir, "none.json")
	if err := os.WriteFile(noAuth, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := loginsPolicy(t)
	copyTo := func(authfile, dest string) (string, error) {
		return loginsRun(t, 2*time.Minute, w.env, "", skopeo, "--policy", policy, "copy",
			"--src-tls-verify=false", "--authfile", authfile,
			"docker://"+reg.Addr+"/team/app:v1", "oci:"+filepath.Join(dir, dest)+":v1")
	}

	// The registry refuses anonymous pulls.
	if out, err := copyTo(noAuth, "anon"); err == nil || !loginsDenied(out) {
		t.Fatalf("anonymous pull: %v; want an authentication failure:\n%s", err, out)
	}
	// With tollgate named in credHelpers, the config-dir login is used.
	if out, err := copyTo(authFile, "pulled"); err != nil {
		t.Fatalf("skopeo copy through tollgate: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "pulled", "index.json")); err != nil {
		t.Fatalf("nothing pulled: %v", err)
	}
	// Erase the login from the config dir: the same pull now fails.
	if r := w.helper("erase", reg.Addr); r.code != 0 {
		t.Fatalf("erase: %d %s", r.code, r.stdout)
	}
	if out, err := copyTo(authFile, "after-erase"); err == nil || !loginsDenied(out) {
		t.Fatalf("pull after the login was erased: %v; want an authentication failure:\n%s", err, out)
	}
}

func TestLoginsDockerCredsStore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: dockerd and containerd run as root")
	}
	docker := dockerCLI(t)
	reg := startAuthRegistry(t)
	reg.seedImage(t, "team/app", "v1")
	engine := startDockerEngine(t, reg.Addr)
	w := newLoginsWorld(t)
	w.writeConfig(`{"auths": {"` + reg.Addr + `": {"auth": "` + basicAuth(reg.User, reg.Password) + `"}}}`)

	dockerConfig := t.TempDir()
	clientConfig := filepath.Join(dockerConfig, "config.json")
	if err := os.WriteFile(clientConfig, []byte(`{"credsStore": "tollgate"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range w.env {
		env[k] = v
	}
	env["DOCKER_CONFIG"] = dockerConfig
	env["DOCKER_HOST"] = engine.Host
	image := reg.Addr + "/team/app:v1"
	dockerDo := func(stdin string, args ...string) (string, error) {
		return loginsRun(t, 3*time.Minute, env, stdin, docker, args...)
	}

	// The login lives only in the config dir: docker pull gets it from tollgate.
	if out, err := dockerDo("", "pull", image); err != nil {
		t.Fatalf("docker pull with credsStore tollgate: %v\n%s", err, out)
	}
	if out, err := dockerDo("", "image", "inspect", "--format", "{{.Id}}", image); err != nil {
		t.Fatalf("pulled image not in the engine: %v\n%s", err, out)
	}

	// docker logout erases it from the config dir; the pull then fails.
	if out, err := dockerDo("", "logout", reg.Addr); err != nil {
		t.Fatalf("docker logout: %v\n%s", err, out)
	}
	if _, _, ok := w.lookup(reg.Addr); ok {
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
	if out, err := dockerDo(reg.Password, "login", "--username", reg.User, "--password-stdin", reg.Addr); err != nil {
		t.Fatalf("docker login with credsStore tollgate: %v\n%s", err, out)
	}
	if u, p, ok := w.lookup(reg.Addr); !ok || u != reg.User || p != reg.Password {
		t.Fatalf("docker login did not land in the config dir: %q %v", u, ok)
	}
	if data, _ := os.ReadFile(clientConfig); strings.Contains(string(data), basicAuth(reg.User, reg.Password)) || strings.Contains(string(data), reg.Password) {
		t.Fatalf("docker wrote the secret to its own config:\n%s", data)
	}
	if out, err := dockerDo("", "pull", image); err != nil {
		t.Fatalf("docker pull after docker login: %v\n%s", err, out)
	}
}

// lookup reads the config dir's login for host with the helper's own code
// path (docker-credential-tollgate get).
func (w *loginsWorld) lookup(host string) (user, secret string, ok bool) {
	w.t.Helper()
	r := w.helper("get", host)
	if r.code != 0 {
		return "", "", false
	}
	u, s := w.get(host)
	return u, s, true
}
