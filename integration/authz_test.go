package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

// authzPlugin is a running `tollgate authz` on a per-test socket under
// /run/docker/plugins/.
type authzPlugin struct {
	Name, Socket, ConfigPath string
	MetricsURL               string
	Process                  *harness.Process
}

// startAuthz runs the built `tollgate authz` with a config file holding
// cfgYAML, on its own plugin socket and a metrics port, and waits until it
// answers on the socket.
func startAuthz(t *testing.T, bin, cfgYAML string) *authzPlugin {
	t.Helper()
	name, sock := pluginSocket(t, "tgauthz")
	return runAuthz(t, bin, name, sock, cfgYAML, false)
}

// startAuthzIsolated starts the plugin in a network namespace of its own,
// with no interface up (unshare --net), as the example unit's
// PrivateNetwork=yes does: it can reach nothing, so a test that passes
// shows it decides without the network. It serves no metrics.
func startAuthzIsolated(t *testing.T, bin, cfgYAML string) *authzPlugin {
	t.Helper()
	harness.RequireCommands(t, "unshare")
	name, sock := pluginSocket(t, "tgauthz")
	p := runAuthz(t, bin, name, sock, cfgYAML, true)
	mine, err1 := os.Readlink("/proc/self/ns/net")
	its, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.Process.Cmd.Process.Pid))
	if err1 != nil || err2 != nil || mine == its {
		t.Fatalf("the plugin is not in a network namespace of its own: %s %v, %s %v", mine, err1, its, err2)
	}
	return p
}

// startAuthzOn starts the plugin again with the name, socket and config of
// one that stopped.
func startAuthzOn(t *testing.T, bin string, old *authzPlugin) *authzPlugin {
	t.Helper()
	b, err := os.ReadFile(old.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "log:\n  level: debug\n", "", 1)
	cfg = regexp.MustCompile(`(?m)^  socket: .*\n`).ReplaceAllString(cfg, "")
	return runAuthz(t, bin, old.Name, old.Socket, cfg, false)
}

func runAuthz(t *testing.T, bin, name, sock, cfgYAML string, isolated bool) *authzPlugin {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tollgate.yaml")
	// The socket goes into the config too, where tollgate doctor reads it.
	if strings.Contains(cfgYAML, "authz:\n") {
		cfgYAML = strings.Replace(cfgYAML, "authz:\n", fmt.Sprintf("authz:\n  socket: %q\n", sock), 1)
	} else {
		cfgYAML += fmt.Sprintf("authz:\n  socket: %q\n", sock)
	}
	if err := os.WriteFile(cfg, []byte(cfgYAML+"log:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &authzPlugin{Name: name, Socket: sock, ConfigPath: cfg}
	argv := []string{filepath.Join(bin, "tollgate"), "authz", "--config", cfg, "--socket", sock}
	if isolated {
		argv = append([]string{"unshare", "--net", "--"}, argv...)
	} else {
		metrics := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
		argv = append(argv, "--metrics", metrics)
		p.MetricsURL = "http://" + metrics + "/metrics"
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	p.Process = harness.StartProcess(t, "tollgate-authz", dir, cmd)
	testwait.Eventually(t, 20*time.Second, func() error {
		if p.Process.Exited() {
			_, stderr := p.Process.Output()
			t.Fatalf("tollgate authz exited: %v\n%s", p.Process.Err(), stderr)
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return p
}

// metric returns the value of one sample line of the plugin's /metrics, 0
// when it is not there.
func (p *authzPlugin) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(p.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	var v float64
	fmt.Sscan(string(m[1]), &v)
	return v
}

// refused runs the docker CLI, which must fail with the plugin's message
// containing every one of want.
func refused(ctx context.Context, t *testing.T, d *harness.Docker, plugin string, want []string, args ...string) {
	t.Helper()
	out, err := d.Run(ctx, args...)
	if err == nil {
		t.Errorf("docker %s: succeeded, want refused by the plugin\n%s", strings.Join(args, " "), out)
		return
	}
	msg := err.Error()
	for _, w := range append([]string{"authorization denied by plugin " + plugin + ":"}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("docker %s: error does not say %q:\n%s", strings.Join(args, " "), w, msg)
		}
	}
}

// repoRequests counts the registry's logged requests for one repository
// (repo "" for any), past the first skip (the seeding).
func repoRequests(r *harness.Registry, repo string, skip int) int {
	n := 0
	for _, q := range r.Requests()[skip:] {
		if strings.HasPrefix(q.Path, "/v2/"+repo) {
			n++
		}
	}
	return n
}

func TestAuthzDockerPrivate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	bin := harness.BuildBinaries(t)
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	other := harness.StartRegistry(t, harness.RegistryOptions{})
	img := reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 1, LayerSize: 4096})
	reg.SeedImage(t, "elsewhere/app", "v1", harness.ImageSpec{Layers: 1, LayerSize: 4096})
	reg.SeedImage(t, "team/missing-allowed", "v1", harness.ImageSpec{Layers: 1, LayerSize: 4096})
	other.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 1, LayerSize: 4096})
	seeded, seededOther := len(reg.Requests()), len(other.Requests())
	pl := startAuthz(t, bin, fmt.Sprintf("mode: private\nallowlist:\n  - %q\n", reg.Host+"/team/app"))
	d := harness.StartDocker(t, harness.DockerOptions{AuthorizationPlugins: []string{pl.Name}})

	if _, err := d.Run(ctx, "pull", img.Ref()); err != nil {
		t.Fatalf("allowed pull: %v", err)
	}
	if id, err := d.ImageID(ctx, img.Ref()); err != nil || id != img.Config {
		t.Errorf("allowed pull: image %s, %v; want %s", id, err, img.Config)
	}

	// A denied host: its registry sees nothing.
	refused(ctx, t, d, pl.Name, []string{`"allowlist"`, "registry host " + other.Host + " is not in the allowlist", `add "` + other.Host + `"`},
		"pull", other.Host+"/team/app:v1")
	if n := repoRequests(other, "", seededOther); n != 0 {
		t.Errorf("the denied registry saw %d requests", n)
	}
	// A denied repository prefix on the allowed host.
	refused(ctx, t, d, pl.Name, []string{`"allowlist"`, "repository elsewhere/app on " + reg.Host + " is not allowed", `add "` + reg.Host + `/elsewhere/app"`},
		"pull", reg.Host+"/elsewhere/app:v1")
	if n := repoRequests(reg, "elsewhere/app/", seeded); n != 0 {
		t.Errorf("the registry saw %d requests for the denied repository", n)
	}
	// docker run of a missing, denied image: refused at create, never pulled.
	refused(ctx, t, d, pl.Name, []string{"container create of " + reg.Host + "/team/missing-allowed:v1", `"allowlist"`},
		"run", "--rm", reg.Host+"/team/missing-allowed:v1", "true")
	if n := repoRequests(reg, "team/missing-allowed/", seeded); n != 0 {
		t.Errorf("the registry saw %d requests for the image docker run was refused", n)
	}
	// The gates, at their defaults.
	refused(ctx, t, d, pl.Name, []string{`"authz.local_images"`, "authz.local_images: allow"}, "create", img.Config)
	refused(ctx, t, d, pl.Name, []string{`"authz.local_images"`}, "tag", img.Ref(), "renamed:v1")
	tarFile := filepath.Join(t.TempDir(), "img.tar")
	if _, err := d.Run(ctx, "save", "-o", tarFile, img.Ref()); err != nil {
		t.Fatal(err)
	}
	refused(ctx, t, d, pl.Name, []string{`"authz.load"`}, "load", "-i", tarFile)
	refused(ctx, t, d, pl.Name, []string{`"authz.import"`}, "import", tarFile, "imported:v1")
	buildDir := t.TempDir()
	os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM "+img.Ref()+"\n"), 0o644)
	if out, err := harness.Run(ctx, append(d.Env(), "DOCKER_BUILDKIT=0"), "docker", "build", "-t", "built:v1", buildDir); err == nil || !strings.Contains(err.Error(), `"authz.build"`) {
		t.Errorf("docker build: %v\n%s; want refused by rule authz.build", err, out)
	}
	// Allowed things still work through the plugin.
	if _, err := d.Run(ctx, "create", "--name", "c1", img.Ref()); err != nil {
		t.Errorf("docker create of an allowed image: %v", err)
	}

	if n := pl.metric(t, `tollgate_authz_denials_total{rule="allowlist"}`); n != 3 {
		t.Errorf("allowlist denials counted: %v, want 3", n)
	}
	if n := pl.metric(t, `tollgate_authz_requests_total{decision="allow",what="image pull"}`); n != 1 {
		t.Errorf("allowed pulls counted: %v, want 1", n)
	}
	if st, detail := doctorAuthz(ctx, t, bin, pl.ConfigPath, d.Host); st != "ok" {
		t.Errorf("tollgate doctor, daemon using the plugin: %s: %s", st, detail)
	}
	_, stderr := pl.Process.Output()
	if c := strings.Count(stderr, "authz deny"); c < 8 {
		t.Errorf("%d refusals logged, want at least 8:\n%s", c, stderr)
	}
}

func TestAuthzDockerPublic(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 1, LayerSize: 4096})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Mode:      "public",
		Allowlist: []string{pubHost + "/team/*"},
		Upstreams: map[string]string{pubHost: up.rec.URL},
	})
	// The upstream is allowed by its real address too: public mode must
	// refuse it anyway, because the daemon would pull it directly.
	// In a network namespace of its own: deciding needs no network.
	pl := startAuthzIsolated(t, bin, fmt.Sprintf("mode: public\nallowlist:\n  - %q\n  - %q\nauthz:\n  proxy: %q\n", pubHost+"/team/*", up.rec.Host, px.Host))
	cfgDir := t.TempDir()
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte("{}\n"), 0o600)
	d := harness.StartDocker(t, harness.DockerOptions{AuthorizationPlugins: []string{pl.Name}, ConfigDir: cfgDir})

	via := px.Host + "/" + pubHost + "/team/app:v1"
	if _, err := d.Run(ctx, "pull", via); err != nil {
		t.Fatalf("pull through the proxy: %v", err)
	}
	if id, err := d.ImageID(ctx, via); err != nil || id != img.Config {
		t.Errorf("pull through the proxy: image %s, %v; want %s", id, err, img.Config)
	}
	before := len(up.rec.Requests())
	refused(ctx, t, d, pl.Name, []string{`"mode: public"`, "only through the tollgate proxy at " + px.Host, "use " + px.Host + "/" + up.rec.Host + "/team/app:v1 instead"},
		"pull", up.rec.Host+"/team/app:v1")
	if n := len(up.rec.Requests()) - before; n != 0 {
		t.Errorf("the upstream saw %d requests from a refused direct pull", n)
	}
	// A repository outside the allowlist, through the proxy: refused by
	// the plugin before the proxy is asked.
	refused(ctx, t, d, pl.Name, []string{`"allowlist"`, "repository other/app on " + pubHost}, "pull", px.Host+"/"+pubHost+"/other/app:v1")
	// docker login: credentials have no use on a shared host.
	refused(ctx, t, d, pl.Name, []string{`"authz.login"`}, "login", "-u", "someone", "-p", "not-a-real-password", px.Host)
	// docker run of an image the host has, by a name not through the proxy.
	refused(ctx, t, d, pl.Name, []string{`"mode: public"`}, "run", "--rm", up.rec.Host+"/team/app:v1", "true")
	if _, err := d.Run(ctx, "create", via); err != nil {
		t.Errorf("docker create of the image pulled through the proxy: %v", err)
	}
	// A daemon without the plugin, in public mode: doctor fails.
	plain := harness.StartDocker(t, harness.DockerOptions{})
	if st, detail := doctorAuthz(ctx, t, bin, pl.ConfigPath, plain.Host); st != "fail" || !strings.Contains(detail, "authorization-plugins") {
		t.Errorf("tollgate doctor, public mode, daemon without the plugin: %s: %s; want fail with the daemon.json fix", st, detail)
	}
	_, stderr := pl.Process.Output()
	if strings.Contains(stderr, "not-a-real-password") {
		t.Error("the login password reached the plugin's log")
	}
}

func TestAuthzDockerPluginStopped(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	bin := harness.BuildBinaries(t)
	reg := harness.StartRegistry(t, harness.RegistryOptions{})
	img := reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 1, LayerSize: 4096})
	seeded := len(reg.Requests())
	pl := startAuthz(t, bin, fmt.Sprintf("allowlist:\n  - %q\n", reg.Host))
	d := harness.StartDocker(t, harness.DockerOptions{AuthorizationPlugins: []string{pl.Name}})
	if _, err := d.Run(ctx, "image", "ls"); err != nil {
		t.Fatalf("with the plugin up: %v", err)
	}
	pl.Process.Stop()
	if _, err := os.Stat(pl.Socket); err == nil {
		t.Error("the stopped plugin left its socket behind")
	}
	start := time.Now()
	out, err := d.Run(ctx, "pull", img.Ref())
	if err == nil {
		t.Fatalf("pull with the plugin stopped succeeded:\n%s", out)
	}
	if !strings.Contains(err.Error(), pl.Name) {
		t.Errorf("refusal does not name the plugin: %v", err)
	}
	t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if n := repoRequests(reg, "", seeded); n != 0 {
		t.Errorf("the registry saw %d requests with the plugin stopped", n)
	}
	if st, detail := doctorAuthz(ctx, t, bin, pl.ConfigPath, d.Host); st != "fail" || !strings.Contains(detail, "start tollgate authz") {
		t.Errorf("tollgate doctor with the plugin stopped: %s: %s; want fail saying to start it", st, detail)
	}
	// Started again on the same socket, the plugin is used at once.
	pl2 := startAuthzOn(t, bin, pl)
	if _, err := d.Run(ctx, "pull", img.Ref()); err != nil {
		t.Errorf("pull after the plugin restarted: %v", err)
	}
	if n := pl2.metric(t, `tollgate_authz_requests_total{decision="allow",what="image pull"}`); n != 1 {
		t.Errorf("the restarted plugin counted %v allowed pulls, want 1", n)
	}
}

// doctorAuthz runs tollgate doctor against a daemon and returns its authz
// check.
func doctorAuthz(ctx context.Context, t *testing.T, bin, configPath, dockerHost string) (status, detail string) {
	t.Helper()
	out, _ := harness.Run(ctx, nil, filepath.Join(bin, "tollgate"), "doctor", "--json", "--timeout", "4s", "--config", configPath, "--docker-host", dockerHost)
	var rep struct {
		Checks []struct{ Name, Status, Detail, Fix string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("tollgate doctor --json: %v\n%s", err, out)
	}
	for _, c := range rep.Checks {
		if c.Name == "authz" {
			return c.Status, c.Detail + " / fix: " + c.Fix
		}
	}
	t.Fatalf("tollgate doctor has no authz check:\n%s", out)
	return "", ""
}
