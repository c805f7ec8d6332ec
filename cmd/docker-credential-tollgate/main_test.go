package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

// tollgateBin builds cmd/tollgate once: the helper runs it to mint.
var tollgateBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tollgate-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tollgate")
	if out, err := exec.Command("go", "build", "-o", bin, "../tollgate").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tollgate: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := tollgateBin(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func fakeEnv(t *testing.T) *fakeaws.Server {
	t.Helper()
	bin, err := tollgateBin()
	if err != nil {
		t.Fatal(err)
	}
	s := fakeaws.Start(t, fakeaws.Options{})
	s.UseEnv(t, "TOLLGATE_CACHE_DIR="+t.TempDir(), "TOLLGATE_BIN="+bin)
	t.Setenv("SPACELIFT_DOCKER_CONFIG_DIR", "")
	os.Unsetenv("SPACELIFT_DOCKER_CONFIG_DIR")
	s.SetInstanceRole("ci-worker", "arn:aws:iam::111111111111:role/ci-worker")
	return s
}

func get(t *testing.T, host string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run([]string{"get"}, strings.NewReader(host), &out, &errb)
	return code, out.String(), errb.String()
}

// The ecr section of $TOLLGATE_CONFIG reaches the engine: a per-registry
// role is assumed for its registry only.
func TestConfigFileRegistrySettings(t *testing.T) {
	s := fakeEnv(t)
	const cross = "333333333333.dkr.ecr.us-west-2.amazonaws.com"
	cfg := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(cfg, []byte("ecr:\n  refresh_margin: 2h\n  registries:\n    "+cross+":\n      role_arn: arn:aws:iam::333333333333:role/puller\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOLLGATE_CONFIG", cfg)
	code, stdout, stderr := get(t, cross)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatal(err)
	}
	arn, ok := s.CheckToken(c.Username, c.Secret)
	if !ok || !strings.HasPrefix(arn, "arn:aws:sts::333333333333:assumed-role/puller/") {
		t.Fatalf("token belongs to %q", arn)
	}
	if s.Calls(fakeaws.APISTSAssumeRole) != 1 {
		t.Fatalf("calls %v", s.CallCounts())
	}
}

func TestBadConfigFails(t *testing.T) {
	fakeEnv(t)
	cfg := filepath.Join(t.TempDir(), "tollgate.yaml")
	os.WriteFile(cfg, []byte("ecr:\n  registries:\n    docker.io:\n      profile: x\n"), 0o600)
	t.Setenv("TOLLGATE_CONFIG", cfg)
	code, stdout, _ := get(t, "111111111111.dkr.ecr.us-west-2.amazonaws.com")
	if code == 0 || !strings.Contains(stdout, "docker.io") || strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}

func TestFailureExitsNonZeroWithReason(t *testing.T) {
	s := fakeEnv(t)
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	logFile := filepath.Join(t.TempDir(), "helper.log")
	t.Setenv("TOLLGATE_LOG_FILE", logFile)
	code, stdout, _ := get(t, "111111111111.dkr.ecr.us-west-2.amazonaws.com")
	if code != 1 || !strings.HasPrefix(stdout, "access denied") || strings.Contains(stdout, "credentials not found") ||
		strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	log, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(log), "access denied") {
		t.Fatalf("log file: %q %v", log, err)
	}
	if fi, _ := os.Stat(logFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v", fi.Mode().Perm())
	}
	for _, p := range s.MintedPasswords() {
		if strings.Contains(string(log), p) {
			t.Fatal("token in log")
		}
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, strings.NewReader(""), &out, &out); code != 0 || !strings.Contains(out.String(), "docker-credential-tollgate") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(nil, strings.NewReader(""), &out, &out); code == 0 {
		t.Fatal("no action accepted")
	}
}

// Without the tollgate command a warm get still works, and a miss says what
// is missing rather than "credentials not found".
func TestMissingTollgateCommand(t *testing.T) {
	s := fakeEnv(t)
	const host = "111111111111.dkr.ecr.us-west-2.amazonaws.com"
	if code, stdout, stderr := get(t, host); code != 0 {
		t.Fatalf("warm-up: %d %s %s", code, stdout, stderr)
	}
	t.Setenv("TOLLGATE_BIN", "")
	t.Setenv("PATH", t.TempDir())
	s.ResetCalls()
	if code, stdout, _ := get(t, host); code != 0 || !strings.Contains(stdout, `"Username":"AWS"`) {
		t.Fatalf("warm get without tollgate: %d %q", code, stdout)
	}
	code, stdout, _ := get(t, "111111111111.dkr.ecr.eu-west-1.amazonaws.com")
	if code != 1 || !strings.Contains(stdout, "tollgate command") || !strings.Contains(stdout, "TOLLGATE_BIN") {
		t.Fatalf("miss without tollgate: %d %q", code, stdout)
	}
	if n := s.Calls(""); n != 0 {
		t.Fatalf("%d AWS calls", n)
	}
}

// A mint that outlives the helper's time bound (a hung lock holder, an AWS
// that does not answer) ends with a reason that says so and what to do, not
// with the killed child's bare "signal: killed".
func TestMintPastTheTimeBoundSaysWhy(t *testing.T) {
	fakeEnv(t)
	slow := filepath.Join(t.TempDir(), "tollgate")
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nexec sleep 30\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOLLGATE_BIN", slow)
	lookup, err := cacheLookup()
	if err != nil {
		t.Fatal(err)
	}
	c := &cachedTokens{lookup: lookup, log: slog.New(slog.DiscardHandler), stderr: io.Discard}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Token(ctx, "111111111111.dkr.ecr.us-west-2.amazonaws.com")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "111111111111.dkr.ecr.us-west-2.amazonaws.com") || !strings.Contains(msg, "tollgate doctor") || strings.Contains(msg, "signal: killed") {
		t.Fatalf("message %q does not say what happened and what to do", msg)
	}
}

// The token cache's settings concern ECR hosts only: without a cache
// directory (no HOME, as for a system service) or with a broken
// $TOLLGATE_CONFIG, logins for other registries are still served and stored,
// and an ECR get says what is wrong.
func TestCacheSettingsProblemsOnlyAffectECR(t *testing.T) {
	fakeEnv(t)
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("bot:pw"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"ghcr.io":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SPACELIFT_DOCKER_CONFIG_DIR", dir)
	badConfig := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(badConfig, []byte("ecr:\n  registries:\n    docker.io:\n      profile: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][][2]string{
		"no cache directory": {{"TOLLGATE_CACHE_DIR", ""}, {"XDG_CACHE_HOME", ""}, {"HOME", ""}},
		"broken config":      {{"TOLLGATE_CONFIG", badConfig}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, kv := range env {
				t.Setenv(kv[0], kv[1])
			}
			code, stdout, stderr := get(t, "ghcr.io")
			if code != 0 || !strings.Contains(stdout, `"Username":"bot"`) {
				t.Fatalf("get ghcr.io: exit %d, %q %q", code, stdout, stderr)
			}
			var out, errb bytes.Buffer
			in := `{"ServerURL":"quay.io","Username":"u","Secret":"s"}`
			if code := run([]string{"store"}, strings.NewReader(in), &out, &errb); code != 0 {
				t.Fatalf("store quay.io: exit %d, %q", code, out.String())
			}
			code, stdout, _ = get(t, "111111111111.dkr.ecr.us-west-2.amazonaws.com")
			if code != 1 || strings.Contains(stdout, "credentials not found") || strings.TrimSpace(stdout) == "" {
				t.Fatalf("ECR get: exit %d, %q", code, stdout)
			}
		})
	}
}

// A config dir copied from a host that used amazon-ecr-credential-helper
// names it for ECR hosts in credHelpers. Tollgate mints those hosts itself,
// so list must not run that helper for them (it would call AWS): list never
// calls AWS.
func TestListDoesNotRunHelpersForECRHosts(t *testing.T) {
	s := fakeEnv(t)
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls.log")
	script := "#!/bin/sh\nin=$(cat)\necho \"$1 $in\" >> '" + calls + "'\n" +
		"case \"$1\" in get) echo '{\"ServerURL\":\"x\",\"Username\":\"AWS\",\"Secret\":\"s\"}';; list) echo '{}';; esac\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-ecr-login"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const ecrHost = "111111111111.dkr.ecr.us-west-2.amazonaws.com"
	cfg := `{"credHelpers":{"` + ecrHost + `":"ecr-login","other.example.com":"ecr-login"}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SPACELIFT_DOCKER_CONFIG_DIR", dir)
	var out, errb bytes.Buffer
	if code := run([]string{"list"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("list: exit %d, %q %q", code, out.String(), errb.String())
	}
	b, _ := os.ReadFile(calls)
	if strings.Contains(string(b), ecrHost) {
		t.Fatalf("list ran the delegated helper for an ECR host: %q", b)
	}
	if !strings.Contains(string(b), "get other.example.com") {
		t.Fatalf("list did not ask the helper about its other registry: %q", b)
	}
	if n := s.Calls(""); n != 0 {
		t.Fatalf("list made %d AWS calls", n)
	}
}

// A relative $SPACELIFT_DOCKER_CONFIG_DIR is refused with what to do, for
// every login operation, even when the directory it names relative to the
// working directory holds a login (it would be someone else's); ECR hosts,
// which need no config dir, still work.
func TestRelativeConfigDirIsRefused(t *testing.T) {
	fakeEnv(t)
	cwd := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cwd, "docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("bot:pw"))
	if err := os.WriteFile(filepath.Join(cwd, "docker", "config.json"), []byte(`{"auths":{"ghcr.io":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd)
	t.Setenv("SPACELIFT_DOCKER_CONFIG_DIR", "docker")
	for action, in := range map[string]string{
		"get":   "ghcr.io",
		"store": `{"ServerURL":"quay.io","Username":"u","Secret":"s"}`,
		"erase": "ghcr.io",
		"list":  "",
	} {
		var out, errb bytes.Buffer
		code := run([]string{action}, strings.NewReader(in), &out, &errb)
		if code != 1 || !strings.Contains(out.String(), `SPACELIFT_DOCKER_CONFIG_DIR is a relative path ("docker")`) ||
			!strings.Contains(out.String(), "make it absolute") || strings.Contains(out.String(), "bot") {
			t.Errorf("%s: exit %d, stdout %q", action, code, out.String())
		}
	}
	if data, _ := os.ReadFile(filepath.Join(cwd, "docker", "config.json")); strings.Contains(string(data), "quay.io") || !strings.Contains(string(data), "ghcr.io") {
		t.Errorf("the relative directory was written: %s", data)
	}
	if code, stdout, stderr := get(t, "111111111111.dkr.ecr.us-west-2.amazonaws.com"); code != 0 || !strings.Contains(stdout, `"Username":"AWS"`) {
		t.Fatalf("ECR get: exit %d, %q %q", code, stdout, stderr)
	}
}
