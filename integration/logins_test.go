package integration

// Tests of the config-dir logins through the real docker-credential-tollgate
// binary and the credential helper protocol, with real files and real
// subprocesses (including a delegated helper built from testdata/fakehelper).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/integration/harness"
)

// loginsFake builds the fake credential helper (testdata/fakehelper) once
// per test process; docker-credential-tollgate comes from
// harness.BuildBinaries, shared with the other integration tests.
var loginsFake struct {
	once sync.Once
	path string
	err  error
}

func loginsFakeHelper(t testing.TB) string {
	t.Helper()
	loginsFake.once.Do(func() {
		root, err := harness.ModuleRoot()
		if err != nil {
			loginsFake.err = err
			return
		}
		dir := filepath.Join(harness.BuildBinaries(t), "testdata")
		loginsFake.path = filepath.Join(dir, "fakehelper")
		cmd := exec.Command("go", "build", "-o", loginsFake.path, "./integration/testdata/fakehelper")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			loginsFake.err = fmt.Errorf("go build fakehelper: %w\n%s", err, out)
		}
	})
	if loginsFake.err != nil {
		t.Fatal(loginsFake.err)
	}
	return loginsFake.path
}

// loginsWorld is one test's environment: a PATH directory holding the
// tollgate helper (and whatever else a test installs), and a config dir.
type loginsWorld struct {
	t         *testing.T
	bin       string // directory first on PATH
	configDir string
	env       map[string]string
	cwd       string // the helper's working directory; "" is the test's
}

func newLoginsWorld(t *testing.T) *loginsWorld {
	t.Helper()
	built := harness.BuildBinaries(t)
	w := &loginsWorld{t: t, bin: t.TempDir(), configDir: filepath.Join(t.TempDir(), "logins")}
	if err := os.Mkdir(w.configDir, 0o700); err != nil {
		t.Fatal(err)
	}
	w.link(filepath.Join(built, "docker-credential-tollgate"), "docker-credential-tollgate")
	w.env = map[string]string{
		"PATH":                        w.bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME":                        t.TempDir(),
		"SPACELIFT_DOCKER_CONFIG_DIR": w.configDir,
		// Keep the SDK off any real AWS endpoint; the ECR test adds fakeaws.
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"TOLLGATE_CACHE_DIR":          t.TempDir(),
		"XDG_CACHE_HOME":              t.TempDir(),
	}
	return w
}

// link installs target in the PATH directory under name.
func (w *loginsWorld) link(target, name string) {
	w.t.Helper()
	if err := os.Symlink(target, filepath.Join(w.bin, name)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *loginsWorld) configPath() string { return filepath.Join(w.configDir, "config.json") }

func (w *loginsWorld) writeConfig(s string) {
	w.t.Helper()
	if err := os.WriteFile(w.configPath(), []byte(s), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

type loginsHelperResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// helper runs docker-credential-tollgate ACTION with stdin, as docker does.
func (w *loginsWorld) helper(action, stdin string) loginsHelperResult {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(w.bin, "docker-credential-tollgate"), action)
	cmd.Env = loginsEnv(w.env)
	cmd.Dir = w.cwd
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := loginsHelperResult{stdout: so.String(), stderr: se.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		w.t.Fatalf("docker-credential-tollgate %s did not finish in 60s\nstdout: %s\nstderr: %s", action, r.stdout, r.stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// get returns the username and secret the helper serves for serverURL,
// failing the test on any error.
func (w *loginsWorld) get(serverURL string) (string, string) {
	w.t.Helper()
	r := w.helper("get", serverURL)
	if r.code != 0 {
		w.t.Fatalf("get %s: exit %d: %s %s", serverURL, r.code, r.stdout, r.stderr)
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		w.t.Fatalf("get %s: output %q: %v", serverURL, r.stdout, err)
	}
	return c.Username, c.Secret
}

func (w *loginsWorld) wantNotFound(serverURL string) {
	w.t.Helper()
	r := w.helper("get", serverURL)
	if r.code == 0 || strings.TrimSpace(r.stdout) != "credentials not found in native keychain" {
		w.t.Fatalf("get %s: exit %d, stdout %q, stderr %q; want not found", serverURL, r.code, r.stdout, r.stderr)
	}
}

func (w *loginsWorld) store(serverURL, user, secret string) {
	w.t.Helper()
	in, _ := json.Marshal(map[string]string{"ServerURL": serverURL, "Username": user, "Secret": secret})
	if r := w.helper("store", string(in)); r.code != 0 {
		w.t.Fatalf("store %s: exit %d: %s %s", serverURL, r.code, r.stdout, r.stderr)
	}
}

func (w *loginsWorld) list() map[string]string {
	w.t.Helper()
	r := w.helper("list", "")
	if r.code != 0 {
		w.t.Fatalf("list: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		w.t.Fatalf("list output %q: %v", r.stdout, err)
	}
	return m
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

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestLoginsAuthsShapes(t *testing.T) {
	w := newLoginsWorld(t)
	w.writeConfig(`{
	"auths": {
		"https://index.docker.io/v1/": {"auth": "` + basicAuth("hubuser", "hub:pass") + `"},
		"HTTPS://Reg.Example.com:5000/v2/": {"username": "plainuser", "password": "plainpass"},
		"token.example.com": {"identitytoken": "id-token-value"},
		"quay.io": {"auth": "` + basicAuth("robot+ci", "p@ss:w0rd==") + `", "email": "ci@example.com"},
		"empty.example.com": {}
	},
	"psFormat": "table {{.ID}}"
}`)
	for _, c := range []struct{ server, user, secret string }{
		{"https://index.docker.io/v1/", "hubuser", "hub:pass"},
		{"docker.io", "hubuser", "hub:pass"},
		{"registry-1.docker.io", "hubuser", "hub:pass"},
		{"index.docker.io", "hubuser", "hub:pass"},
		{"reg.example.com:5000", "plainuser", "plainpass"},
		{"https://REG.EXAMPLE.COM:5000", "plainuser", "plainpass"},
		{"token.example.com", "<token>", "id-token-value"},
		{"quay.io", "robot+ci", "p@ss:w0rd=="},
		{"https://quay.io/v2/", "robot+ci", "p@ss:w0rd=="},
	} {
		if u, s := w.get(c.server); u != c.user || s != c.secret {
			t.Errorf("get %s = %q/%q, want %q/%q", c.server, u, s, c.user, c.secret)
		}
	}
	for _, miss := range []string{"empty.example.com", "reg.example.com", "reg.example.com:5001", "ghcr.io"} {
		w.wantNotFound(miss)
	}
	want := map[string]string{
		"https://index.docker.io/v1/":      "hubuser",
		"HTTPS://Reg.Example.com:5000/v2/": "plainuser",
		"token.example.com":                "<token>",
		"quay.io":                          "robot+ci",
	}
	if got := w.list(); !reflect.DeepEqual(got, want) {
		t.Errorf("list = %v, want %v", got, want)
	}
}

func TestLoginsStoreGetEraseList(t *testing.T) {
	w := newLoginsWorld(t)
	original := `{
	"auths": {"keep.example.com": {"auth": "` + basicAuth("k", "kp") + `", "x-note": [1, {"a": true}]}},
	"credHelpers": {"unused.example.com": "nothing-installed"},
	"detachKeys": "ctrl-e,e",
	"proxies": {"default": {"noProxy": "127.0.0.1"}}
}`
	w.writeConfig(original)
	w.wantNotFound("127.0.0.1:5000")
	w.store("127.0.0.1:5000", "alice", "s3cret:with:colons")
	w.store("https://index.docker.io/v1/", "bob", "hubsecret")
	w.store("id.example.com", "<token>", "refresh-me")
	if u, s := w.get("127.0.0.1:5000"); u != "alice" || s != "s3cret:with:colons" {
		t.Fatalf("get = %q/%q", u, s)
	}
	if u, s := w.get("registry-1.docker.io"); u != "bob" || s != "hubsecret" {
		t.Fatalf("get hub alias = %q/%q", u, s)
	}
	if u, s := w.get("id.example.com"); u != "<token>" || s != "refresh-me" {
		t.Fatalf("get identity token = %q/%q", u, s)
	}
	// Store again: replaces, does not duplicate.
	w.store("docker.io", "bob2", "hubsecret2")
	if u, s := w.get("https://index.docker.io/v1/"); u != "bob2" || s != "hubsecret2" {
		t.Fatalf("get after restore = %q/%q", u, s)
	}
	want := map[string]string{"keep.example.com": "k", "127.0.0.1:5000": "alice", "https://index.docker.io/v1/": "bob2", "id.example.com": "<token>"}
	if got := w.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	// The file is docker's format, private, and kept everything else.
	fi, err := os.Stat(w.configPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v %v", fi.Mode(), err)
	}
	var before, after map[string]any
	_ = json.Unmarshal([]byte(original), &before)
	data, _ := os.ReadFile(w.configPath())
	if err := json.Unmarshal(data, &after); err != nil {
		t.Fatalf("written config is not JSON: %v", err)
	}
	for _, k := range []string{"credHelpers", "detachKeys", "proxies"} {
		if !reflect.DeepEqual(before[k], after[k]) {
			t.Errorf("%s changed: %v -> %v", k, before[k], after[k])
		}
	}
	auths := after["auths"].(map[string]any)
	if !reflect.DeepEqual(auths["keep.example.com"], before["auths"].(map[string]any)["keep.example.com"]) {
		t.Errorf("untouched entry changed: %v", auths["keep.example.com"])
	}
	if !reflect.DeepEqual(auths["127.0.0.1:5000"], map[string]any{"auth": basicAuth("alice", "s3cret:with:colons")}) {
		t.Errorf("stored entry = %v", auths["127.0.0.1:5000"])
	}
	if !reflect.DeepEqual(auths["id.example.com"], map[string]any{"identitytoken": "refresh-me"}) {
		t.Errorf("identity token entry = %v", auths["id.example.com"])
	}
	// Erase, by another spelling of the same registry.
	if r := w.helper("erase", "https://127.0.0.1:5000/v2/"); r.code != 0 {
		t.Fatalf("erase: %d %s %s", r.code, r.stdout, r.stderr)
	}
	w.wantNotFound("127.0.0.1:5000")
	if r := w.helper("erase", "never.example.com"); r.code != 0 {
		t.Fatalf("erase of a missing login: %d %s", r.code, r.stdout)
	}
	delete(want, "127.0.0.1:5000")
	if got := w.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("list after erase = %v, want %v", got, want)
	}
}

func TestLoginsConcurrentStores(t *testing.T) {
	w := newLoginsWorld(t)
	w.writeConfig(`{"auths":{"pre.example.com":{"auth":"` + basicAuth("p", "q") + `"}},"currentContext":"default"}`)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, _ := json.Marshal(map[string]string{"ServerURL": fmt.Sprintf("r%02d.example.com", i), "Username": fmt.Sprintf("u%d", i), "Secret": fmt.Sprintf("s%d", i)})
			cmd := exec.Command(filepath.Join(w.bin, "docker-credential-tollgate"), "store")
			cmd.Env = loginsEnv(w.env)
			cmd.Stdin = bytes.NewReader(in)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("store %d: %v: %s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got := w.list()
	if len(got) != n+1 {
		t.Fatalf("list has %d logins, want %d: %v", len(got), n+1, got)
	}
	for i := 0; i < n; i++ {
		if u, s := w.get(fmt.Sprintf("r%02d.example.com", i)); u != fmt.Sprintf("u%d", i) || s != fmt.Sprintf("s%d", i) {
			t.Errorf("login %d = %q/%q", i, u, s)
		}
	}
	data, _ := os.ReadFile(w.configPath())
	if !strings.Contains(string(data), `"currentContext": "default"`) {
		t.Errorf("unknown field lost:\n%s", data)
	}
	leftovers, _ := filepath.Glob(filepath.Join(w.configDir, ".config.json.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestLoginsCorruptConfigUntouched(t *testing.T) {
	w := newLoginsWorld(t)
	corrupt := "{\n  \"auths\": {\n    \"a.example.com\": {\"auth\": \"" + basicAuth("a", "topsecret") + "\"}\n    \"b.example.com\": {}\n  }\n}\n"
	w.writeConfig(corrupt)
	in, _ := json.Marshal(map[string]string{"ServerURL": "c.example.com", "Username": "u", "Secret": "p"})
	for _, op := range []struct{ action, stdin string }{{"store", string(in)}, {"erase", "a.example.com"}, {"get", "a.example.com"}, {"list", ""}} {
		r := w.helper(op.action, op.stdin)
		if r.code == 0 {
			t.Errorf("%s succeeded on a corrupt config: %s", op.action, r.stdout)
		}
		msg := r.stdout + r.stderr
		if !strings.Contains(msg, w.configPath()+":4:5") {
			t.Errorf("%s: error does not say where the file is broken (%s:4:5): %q", op.action, w.configPath(), msg)
		}
		if strings.Contains(msg, "topsecret") || strings.Contains(msg, basicAuth("a", "topsecret")) {
			t.Errorf("%s: error leaks the credential: %q", op.action, msg)
		}
	}
	data, _ := os.ReadFile(w.configPath())
	if string(data) != corrupt {
		t.Fatalf("corrupt config was modified:\n%s", data)
	}
}

func TestLoginsNoConfigDir(t *testing.T) {
	w := newLoginsWorld(t)
	w.env["SPACELIFT_DOCKER_CONFIG_DIR"] = ""
	w.wantNotFound("reg.example.com")
	in, _ := json.Marshal(map[string]string{"ServerURL": "reg.example.com", "Username": "u", "Secret": "p"})
	r := w.helper("store", string(in))
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "SPACELIFT_DOCKER_CONFIG_DIR is not set") || !strings.Contains(r.stdout+r.stderr, "export SPACELIFT_DOCKER_CONFIG_DIR=") {
		t.Fatalf("store without a config dir: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if got := w.list(); len(got) != 0 {
		t.Fatalf("list = %v", got)
	}
}

// A relative SPACELIFT_DOCKER_CONFIG_DIR would be resolved against the
// directory docker (or a build) runs the helper in: every login operation
// is refused with what to do, and the directory it names from there is
// neither read nor written.
func TestLoginsRelativeConfigDir(t *testing.T) {
	w := newLoginsWorld(t)
	w.cwd = filepath.Dir(w.configDir)
	w.writeConfig(`{"auths":{"reg.example.com":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("u:p")) + `"}}}`)
	before, _ := os.ReadFile(w.configPath())
	w.env["SPACELIFT_DOCKER_CONFIG_DIR"] = filepath.Base(w.configDir)
	in, _ := json.Marshal(map[string]string{"ServerURL": "other.example.com", "Username": "u2", "Secret": "p2"})
	for action, stdin := range map[string]string{"get": "reg.example.com", "store": string(in), "erase": "reg.example.com", "list": ""} {
		r := w.helper(action, stdin)
		if r.code == 0 || !strings.Contains(r.stdout, "SPACELIFT_DOCKER_CONFIG_DIR is a relative path") || !strings.Contains(r.stdout, "make it absolute") {
			t.Errorf("%s: exit %d, %q %q", action, r.code, r.stdout, r.stderr)
		}
	}
	if after, _ := os.ReadFile(w.configPath()); !bytes.Equal(before, after) {
		t.Fatalf("config changed:\n%s", after)
	}
}

func TestLoginsPermissionWarning(t *testing.T) {
	w := newLoginsWorld(t)
	w.writeConfig(`{"auths":{"a.example.com":{"auth":"` + basicAuth("u", "p") + `"}}}`)
	if r := w.helper("get", "a.example.com"); r.code != 0 || r.stderr != "" {
		t.Fatalf("private config: exit %d, stderr %q", r.code, r.stderr)
	}
	if err := os.Chmod(w.configPath(), 0o640); err != nil {
		t.Fatal(err)
	}
	r := w.helper("get", "a.example.com")
	if r.code != 0 || strings.Count(r.stderr, "warning") != 1 || !strings.Contains(r.stderr, "chmod 600 "+w.configPath()) {
		t.Fatalf("exposed config: exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, basicAuth("u", "p")) {
		t.Fatal("warning leaks the credential")
	}
}

// installFake installs the fake helper as docker-credential-<name>.
func (w *loginsWorld) installFake(name string) {
	w.link(loginsFakeHelper(w.t), "docker-credential-"+name)
}

func TestLoginsDelegatedHelper(t *testing.T) {
	w := newLoginsWorld(t)
	w.installFake("fake")
	log := filepath.Join(t.TempDir(), "fake.log")
	w.env["FAKEHELPER_LOG"] = log
	w.env["FAKEHELPER_HOST"] = "127.0.0.1:5999"
	w.env["FAKEHELPER_USER"] = "delegated-user"
	w.env["FAKEHELPER_SECRET"] = "delegated-secret"
	w.writeConfig(`{
	"credHelpers": {"127.0.0.1:5999": "fake"},
	"auths": {"127.0.0.1:5999": {"auth": "` + basicAuth("shadowed", "x") + `"}, "other.example.com": {"auth": "` + basicAuth("o", "op") + `"}}
}`)
	if u, s := w.get("127.0.0.1:5999"); u != "delegated-user" || s != "delegated-secret" {
		t.Fatalf("get = %q/%q", u, s)
	}
	if u, s := w.get("other.example.com"); u != "o" || s != "op" {
		t.Fatalf("get other = %q/%q", u, s)
	}
	logged, _ := os.ReadFile(log)
	if string(logged) != "docker-credential-fake get 127.0.0.1:5999\n" {
		t.Fatalf("fake helper log %q: it must be run once, with the right host, and only for its host", logged)
	}
	// credsStore delegation: the store's login wins, auths are the fallback.
	w.writeConfig(`{"credsStore": "fake", "auths": {"other.example.com": {"auth": "` + basicAuth("o", "op") + `"}}}`)
	if u, _ := w.get("127.0.0.1:5999"); u != "delegated-user" {
		t.Fatalf("get via credsStore = %q", u)
	}
	if u, _ := w.get("other.example.com"); u != "o" {
		t.Fatalf("fallback to auths = %q", u)
	}
	// A store for a delegated registry goes to that helper.
	w.store("127.0.0.1:5999", "new", "newsecret")
	logged, _ = os.ReadFile(log)
	if !strings.Contains(string(logged), `docker-credential-fake store {"ServerURL":"127.0.0.1:5999","Username":"new","Secret":"newsecret"}`) {
		t.Fatalf("store not delegated: %q", logged)
	}
	// A missing helper: a clear error naming it and the config.
	w.writeConfig(`{"credHelpers": {"gone.example.com": "gone"}}`)
	r := w.helper("get", "gone.example.com")
	if r.code == 0 || !strings.Contains(r.stdout, "docker-credential-gone is not on PATH") || !strings.Contains(r.stdout, w.configPath()) {
		t.Fatalf("missing helper: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestLoginsSelfReferenceDoesNotLoop(t *testing.T) {
	w := newLoginsWorld(t)
	// tollgate as credsStore and in credHelpers; also under another name, as a
	// symlink (same file) and as a copy (a different file that is tollgate).
	w.link(filepath.Join(harness.BuildBinaries(t), "docker-credential-tollgate"), "docker-credential-alias")
	src, err := os.ReadFile(filepath.Join(harness.BuildBinaries(t), "docker-credential-tollgate"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.bin, "docker-credential-copy"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	auths := `"auths": {"a.example.com": {"auth": "` + basicAuth("au", "ap") + `"}, "b.example.com": {"auth": "` + basicAuth("bu", "bp") + `"}, "c.example.com": {"auth": "` + basicAuth("cu", "cp") + `"}}`
	for _, cfg := range []string{
		`{"credsStore": "tollgate", ` + auths + `}`,
		`{"credsStore": "alias", "credHelpers": {"a.example.com": "tollgate", "b.example.com": "alias", "c.example.com": "copy"}, ` + auths + `}`,
		`{"credsStore": "copy", ` + auths + `}`,
	} {
		w.writeConfig(cfg)
		for _, h := range []string{"a", "b", "c"} {
			r := w.helper("get", h+".example.com")
			if r.code != 0 || !strings.Contains(r.stdout, `"Username":"`+h+`u"`) {
				t.Fatalf("config %s: get %s: exit %d %q %q", cfg, h, r.code, r.stdout, r.stderr)
			}
			if r.took > 5*time.Second {
				t.Fatalf("get %s took %v", h, r.took)
			}
		}
		w.wantNotFound("d.example.com")
		if got := w.list(); len(got) != 3 {
			t.Fatalf("list = %v", got)
		}
	}
	// With credsStore tollgate, docker login's store lands in auths.
	w.writeConfig(`{"credsStore": "tollgate"}`)
	w.store("d.example.com", "du", "dp")
	if u, s := w.get("d.example.com"); u != "du" || s != "dp" {
		t.Fatalf("get stored = %q/%q", u, s)
	}
}

func TestLoginsHangingHelperIsBounded(t *testing.T) {
	w := newLoginsWorld(t)
	w.installFake("hang")
	w.env["TOLLGATE_CREDENTIAL_HELPER_TIMEOUT"] = "1s"
	w.writeConfig(`{"credHelpers": {"slow.example.com": "hang"}}`)
	r := w.helper("get", "slow.example.com")
	if r.code == 0 || !strings.Contains(r.stdout, "docker-credential-hang") || !strings.Contains(r.stdout, "did not answer get within 1s and was killed") {
		t.Fatalf("hanging helper: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r.took > 5*time.Second {
		t.Fatalf("took %v with a 1s bound", r.took)
	}
	// Without the override the default bound (10s) applies.
	delete(w.env, "TOLLGATE_CREDENTIAL_HELPER_TIMEOUT")
	w.env["TOLLGATE_CREDENTIAL_HELPER_TIMEOUT"] = ""
	r = w.helper("get", "slow.example.com")
	if r.code == 0 || !strings.Contains(r.stdout, "within 10s") || r.took < 9*time.Second || r.took > 20*time.Second {
		t.Fatalf("default bound: exit %d after %v: %q", r.code, r.took, r.stdout)
	}
}

func TestLoginsECRHostsAreMintedNeverStored(t *testing.T) {
	w := newLoginsWorld(t)
	aws := fakeaws.Start(t, fakeaws.Options{})
	aws.AddUser("AKIALOGINSTEST000001", "logins/test/secret+000000000000000000000", "arn:aws:iam::444444444444:user/logins")
	for _, kv := range append(aws.Env(), aws.UserEnv("AKIALOGINSTEST000001")...) {
		k, v, _ := strings.Cut(kv, "=")
		w.env[k] = v
	}
	delete(w.env, "AWS_EC2_METADATA_DISABLED")
	w.env["AWS_EC2_METADATA_DISABLED"] = ""
	const host = "444444444444.dkr.ecr.eu-west-1.amazonaws.com"
	// A stale login for the ECR host in the config dir is never served.
	original := `{"auths": {"` + host + `": {"auth": "` + basicAuth("AWS", "stale-token") + `"}}}`
	w.writeConfig(original)
	// docker login to ECR succeeds and writes nothing.
	w.store(host, "AWS", "a-token-from-docker-login")
	w.store("https://"+host, "AWS", "another")
	if data, _ := os.ReadFile(w.configPath()); string(data) != original {
		t.Fatalf("store for an ECR host wrote the config:\n%s", data)
	}
	u, s := w.get(host)
	if u != "AWS" || s == "stale-token" || s == "a-token-from-docker-login" {
		t.Fatalf("get %s = %q/%q: not a minted token", host, u, s)
	}
	if arn, ok := aws.CheckToken(u, s); !ok || arn != "arn:aws:iam::444444444444:user/logins" {
		t.Fatalf("served token not minted by (fake) ECR: %v %q", ok, arn)
	}
	// list and erase never call AWS.
	calls := aws.Calls("")
	_ = w.list()
	if r := w.helper("erase", host); r.code != 0 {
		t.Fatalf("erase ECR host: %d %s", r.code, r.stdout)
	}
	if n := aws.Calls(""); n != calls {
		t.Fatalf("list/erase called AWS (%d calls)", n-calls)
	}
}
