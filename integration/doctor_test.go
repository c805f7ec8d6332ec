package integration

// End-to-end tests of `tollgate doctor`: the built binary against the
// wire-level fake AWS endpoints, a loopback black hole and real files.
//
// needs: nothing beyond Go.

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

type opsDoctorCheck struct {
	Name, Target, Status, Detail, Fix string
}

type opsDoctorReport struct {
	OK     bool             `json:"ok"`
	Checks []opsDoctorCheck `json:"checks"`
}

func (r opsDoctorReport) get(t *testing.T, name string) opsDoctorCheck {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, r.Checks)
	return opsDoctorCheck{}
}

// doctor runs tollgate doctor --json with extra environment and returns
// the decoded report, the exit code and how long it took.
func (h *opsHost) doctor(env []string, args ...string) (opsDoctorReport, int, time.Duration) {
	h.t.Helper()
	start := time.Now()
	r := opsRunCmd(h.t, 60*time.Second, append(h.env(), env...), opsTollgate(h.t), append([]string{"doctor", "--json"}, args...)...)
	took := time.Since(start)
	h.noSecretsIn(r.stdout + r.stderr)
	var rep opsDoctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		h.t.Fatalf("doctor --json: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	if rep.OK != (r.code == 0) {
		h.t.Errorf("ok=%v but exit %d", rep.OK, r.code)
	}
	for _, c := range rep.Checks {
		if c.Status == "fail" && c.Fix == "" {
			h.t.Errorf("check %s failed without saying what to do: %+v", c.Name, c)
		}
	}
	return rep, r.code, took
}

// opsBlackHole listens on loopback, accepts connections and never answers.
func opsBlackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// opsHealthyProxy is an HTTP server on loopback that answers as the proxy's
// health endpoint does.
func opsHealthyProxy(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte("ok\n"))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDoctorAllPass(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	if err := os.WriteFile(h.configPath(), []byte(`{"auths":{"ghcr.io":{"auth":"dTpw"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The docker client's own config names the helper.
	os.MkdirAll(filepath.Join(h.home, ".docker"), 0o700)
	if err := os.WriteFile(filepath.Join(h.home, ".docker", "config.json"), []byte(`{"credsStore":"tollgate"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, code, _ := h.doctor(nil, "--registry", opsHostA, "--proxy", opsHealthyProxy(t))
	if code != 0 {
		t.Fatalf("exit %d: %+v", code, rep.Checks)
	}
	for _, name := range []string{"config", "allowlist", "config-dir", "cache-dir", "helper", "imds", "aws-credentials", "aws-identity", "ecr", "proxy"} {
		if c := rep.get(t, name); c.Status != "ok" {
			t.Errorf("%s: %+v, want ok", name, c)
		}
	}
	if c := rep.get(t, "aws-identity"); !strings.Contains(c.Detail, opsUserARN) {
		t.Errorf("identity %q does not name %s", c.Detail, opsUserARN)
	}
	if c := rep.get(t, "aws-credentials"); !strings.Contains(c.Detail, "environment") {
		t.Errorf("credential source %q, want the environment", c.Detail)
	}
	if c := rep.get(t, "allowlist"); !strings.Contains(c.Detail, "ghcr.io") {
		t.Errorf("allowlist %q does not list the default patterns", c.Detail)
	}
	if n := h.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Errorf("GetAuthorizationToken calls %d, want 1", n)
	}
	if c := rep.get(t, "ecr"); !strings.Contains(c.Detail, "holds no token yet") {
		t.Errorf("ecr detail %q does not describe the (empty) helper cache", c.Detail)
	}
	// doctor does not leave its throw-away token in the real cache.
	if _, err := os.Stat(h.cacheDir); err == nil {
		t.Error("doctor wrote into the token cache")
	}
}

func TestDoctorReportsTheHelperCache(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	if r := h.tollgate("refresh", "--registry", opsHostA); r.code != 0 {
		t.Fatalf("refresh: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	rep, code, _ := h.doctor(nil, "--registry", opsHostA)
	if code != 0 {
		t.Fatalf("exit %d: %+v", code, rep.Checks)
	}
	if c := rep.get(t, "ecr"); !strings.Contains(c.Detail, "cache holds a token for "+opsUserARN+" valid until") {
		t.Errorf("ecr detail %q does not report the token refresh cached", c.Detail)
	}
}

func TestDoctorHelper(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	// On PATH, but no docker config names it: a warning, not a failure.
	rep, code, _ := h.doctor(nil)
	if c := rep.get(t, "helper"); code != 0 || c.Status != "warn" || !strings.Contains(c.Fix, `"credsStore": "tollgate"`) {
		t.Errorf("exit %d, helper %+v: want a warning that docker does not use it", code, c)
	}
	// Named per registry in credHelpers, through DOCKER_CONFIG.
	dc := filepath.Join(h.home, "dc")
	os.MkdirAll(dc, 0o700)
	os.WriteFile(filepath.Join(dc, "config.json"), []byte(`{"credHelpers":{"`+opsHostA+`":"tollgate","gcr.io":"gcloud"}}`), 0o600)
	rep, _, _ = h.doctor([]string{"DOCKER_CONFIG=" + dc})
	if c := rep.get(t, "helper"); c.Status != "ok" || !strings.Contains(c.Detail, "credHelpers for "+opsHostA) {
		t.Errorf("credHelpers: %+v", c)
	}
	// Not on PATH: docker cannot run it.
	rep, code, _ = h.doctor([]string{"PATH=" + os.Getenv("PATH")})
	if c := rep.get(t, "helper"); code != 1 || c.Status != "fail" || !strings.Contains(c.Detail, "not on PATH") {
		t.Errorf("exit %d, helper %+v: want a failure, not on PATH", code, c)
	}
}

func TestDoctorInstanceRole(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	h.extra = nil // no keys in the environment: the chain ends at IMDS
	h.aws.SetInstanceRole("ci-worker", "arn:aws:iam::444444444444:role/ci-worker")
	rep, code, _ := h.doctor(nil, "--registry", opsHostA)
	if code != 0 {
		t.Fatalf("exit %d: %+v", code, rep.Checks)
	}
	if c := rep.get(t, "aws-credentials"); !strings.Contains(c.Detail, "instance role") {
		t.Errorf("credential source %q, want the instance role", c.Detail)
	}
	if c := rep.get(t, "aws-identity"); !strings.Contains(c.Detail, "assumed-role/ci-worker") {
		t.Errorf("identity %q", c.Detail)
	}
}

func TestDoctorIMDSRefused(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	h.extra = nil
	h.aws.CloseIMDS()
	rep, code, _ := h.doctor(nil, "--registry", opsHostA)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	im := rep.get(t, "imds")
	if im.Status != "fail" || !strings.Contains(im.Detail, "refused") {
		t.Errorf("imds: %+v, want a refused connection", im)
	}
	if c := rep.get(t, "aws-credentials"); c.Status != "fail" {
		t.Errorf("aws-credentials: %+v, want fail", c)
	}
	if c := rep.get(t, "aws-identity"); c.Status != "skip" {
		t.Errorf("aws-identity: %+v, want skip", c)
	}
	if c := rep.get(t, "ecr"); c.Status != "fail" {
		t.Errorf("ecr: %+v, want fail", c)
	}
}

func TestDoctorIMDSUnusedIsOnlyAWarning(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	h.aws.CloseIMDS()
	rep, code, _ := h.doctor(nil)
	if code != 0 {
		t.Fatalf("exit %d: %+v", code, rep.Checks)
	}
	if c := rep.get(t, "imds"); c.Status != "warn" {
		t.Errorf("imds: %+v, want warn (credentials come from the environment)", c)
	}
}

func TestDoctorBlackHolesEndInTime(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	hole := opsBlackHole(t)
	// IMDS, STS and ECR all accept connections and never answer.
	rep, code, took := h.doctor([]string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + hole,
		"AWS_ENDPOINT_URL_STS=" + hole,
		"AWS_ENDPOINT_URL_ECR=" + hole,
	}, "--registry", opsHostA, "--proxy", hole)
	if took > 30*time.Second {
		t.Errorf("doctor took %v, want under 30s", took)
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	// The credentials come from the environment, so IMDS is only a warning.
	im := rep.get(t, "imds")
	if im.Status != "warn" || !strings.Contains(im.Detail, "did not answer in time") || !strings.Contains(im.Fix, "hop limit") {
		t.Errorf("imds: %+v, want a timeout with the hop-limit hint", im)
	}
	for _, name := range []string{"aws-identity", "ecr", "proxy"} {
		if c := rep.get(t, name); c.Status != "fail" {
			t.Errorf("%s: %+v, want fail", name, c)
		}
	}
	if c := rep.get(t, "config"); c.Status != "ok" {
		t.Errorf("config: %+v", c)
	}
}

func TestDoctorIMDSBlackHoleWithoutOtherCredentials(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	h.extra = nil
	rep, code, took := h.doctor([]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + opsBlackHole(t)}, "--registry", opsHostA)
	if took > 30*time.Second {
		t.Errorf("doctor took %v, want under 30s", took)
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	im := rep.get(t, "imds")
	if im.Status != "fail" || !strings.Contains(im.Detail, "did not answer in time") || !strings.Contains(im.Fix, "hop limit") {
		t.Errorf("imds: %+v, want a timeout with the hop-limit hint", im)
	}
	if c := rep.get(t, "aws-credentials"); c.Status != "fail" || !strings.Contains(c.Fix, "imds") {
		t.Errorf("aws-credentials: %+v, want fail pointing at the imds check", c)
	}
}

func TestDoctorAccessDenied(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	h.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	h.aws.Fail(fakeaws.APISTSGetCallerIdentity, fakeaws.Fault{Deny: true})
	rep, code, _ := h.doctor(nil, "--registry", opsHostA)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	ecr := rep.get(t, "ecr")
	if ecr.Status != "fail" || !strings.Contains(ecr.Detail, "access denied") || !strings.Contains(ecr.Fix, "ecr:GetAuthorizationToken") {
		t.Errorf("ecr: %+v, want access denied naming the permission", ecr)
	}
	if c := rep.get(t, "aws-identity"); c.Status != "fail" || !strings.Contains(c.Detail, "refused") {
		t.Errorf("aws-identity: %+v, want refused", c)
	}
}

func TestDoctorBadPermissions(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	if err := os.WriteFile(h.configPath(), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(h.configPath(), 0o644)
	os.Chmod(h.cfgDir, 0o755)
	if err := os.Mkdir(h.cacheDir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(h.cacheDir, 0o777)
	rep, code, _ := h.doctor(nil)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	cd := rep.get(t, "config-dir")
	if cd.Status != "fail" || !strings.Contains(cd.Detail, "0755") || !strings.Contains(cd.Detail, "0644") || !strings.Contains(cd.Fix, "chmod 0700") {
		t.Errorf("config-dir: %+v, want the 0755 dir and 0644 file named, and chmod", cd)
	}
	cc := rep.get(t, "cache-dir")
	if cc.Status != "fail" || !strings.Contains(cc.Detail, "0777") {
		t.Errorf("cache-dir: %+v", cc)
	}
	// A corrupt config.json is reported, not rewritten.
	os.Chmod(h.cfgDir, 0o700)
	os.WriteFile(h.configPath(), []byte(`{"auths": {`), 0o600)
	rep, _, _ = h.doctor(nil)
	if c := rep.get(t, "config-dir"); c.Status != "fail" || !strings.Contains(c.Detail, "config.json") {
		t.Errorf("corrupt config: %+v", c)
	}
	if b, _ := os.ReadFile(h.configPath()); string(b) != `{"auths": {` {
		t.Error("doctor changed the corrupt config")
	}
}

func TestDoctorProxyDownAndBadConfig(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	down, err := fakeaws.ClosedURL()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(h.home, "tollgate.yaml")
	os.WriteFile(cfg, []byte("mode: private\nallowlist:\n  - ghcr.io\nproxy:\n  listn: 127.0.0.1:5000\n"), 0o600)
	rep, code, _ := h.doctor(nil, "--proxy", down, "--config", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if c := rep.get(t, "proxy"); c.Status != "fail" || !strings.Contains(c.Detail, "refused") || !strings.Contains(c.Fix, "start the proxy") {
		t.Errorf("proxy: %+v", c)
	}
	if c := rep.get(t, "config"); c.Status != "fail" || !strings.Contains(c.Detail, "listn") {
		t.Errorf("config: %+v, want the unknown key named", c)
	}
	if c := rep.get(t, "allowlist"); c.Status != "skip" {
		t.Errorf("allowlist: %+v, want skip", c)
	}
}

func TestDoctorTextOutput(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	down, _ := fakeaws.ClosedURL()
	r := h.tollgate("doctor", "--proxy", down)
	if r.code != 1 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "FAIL  proxy "+down) || !strings.Contains(r.stdout, "      fix: start the proxy") || !strings.Contains(r.stdout, "ok    aws-identity: "+opsUserARN) {
		t.Errorf("text output:\n%s", r.stdout)
	}
	if r := h.tollgate("doctor", "stray"); r.code != 2 {
		t.Errorf("stray argument: exit %d, want 2", r.code)
	}
}

// TestDoctorRealProxy probes a real `tollgate proxy`, then the same address
// once it is stopped.
func TestDoctorRealProxy(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proxy := exec.CommandContext(ctx, opsTollgate(t), "proxy", "--listen", addr)
	proxy.Env = append(h.env(), "PATH="+os.Getenv("PATH"))
	var stderr strings.Builder
	proxy.Stderr = &stderr
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			proxy.Process.Kill()
			proxy.Wait()
		}
	}()
	url := "http://" + addr
	// (Its stderr is not quoted on failure: the proxy is still writing it.)
	testwait.True(t, 10*time.Second, "tollgate proxy answers /healthz on "+addr, func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	rep, _, _ := h.doctor(nil, "--proxy", url)
	if c := rep.get(t, "proxy"); c.Status != "ok" {
		t.Errorf("proxy up: %+v", c)
	}
	proxy.Process.Signal(os.Interrupt)
	proxy.Wait()
	stopped = true
	rep, _, _ = h.doctor(nil, "--proxy", url)
	if c := rep.get(t, "proxy"); c.Status != "fail" || !strings.Contains(c.Detail, "refused") {
		t.Errorf("proxy stopped: %+v", c)
	}
}

func TestDoctorHelperWithoutTollgate(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	// A helper alone in a directory, and no tollgate on PATH.
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(opsBinDir(t), "docker-credential-tollgate"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-tollgate"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	rep, code, _ := h.doctor([]string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")})
	if c := rep.get(t, "helper"); code != 1 || c.Status != "fail" || !strings.Contains(c.Detail, "neither beside it nor on PATH") || !strings.Contains(c.Fix, "TOLLGATE_BIN") {
		t.Errorf("exit %d, helper %+v: want a failure naming the missing tollgate", code, c)
	}
	// TOLLGATE_BIN names it.
	rep, _, _ = h.doctor([]string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "TOLLGATE_BIN=" + opsTollgate(t)})
	if c := rep.get(t, "helper"); c.Status == "fail" || !strings.Contains(c.Detail, "($TOLLGATE_BIN)") {
		t.Errorf("with TOLLGATE_BIN: %+v", c)
	}
}
