package integration

// End-to-end tests of `tollgate refresh`: the built binary against the
// wire-level fake AWS endpoints, writing real files.
//
// needs: nothing beyond Go: the AWS endpoints are integration/fakeaws, in process.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

const (
	opsUserKey    = "AKIAOPSUSER000000001"
	opsUserSecret = "ops/secret/0000000000000000000000000000"
	opsUserARN    = "arn:aws:iam::444444444444:user/refresher"

	opsHostA = "444444444444.dkr.ecr.us-east-1.amazonaws.com"
	opsHostB = "555555555555.dkr.ecr.eu-west-1.amazonaws.com"
	opsHostC = "444444444444.dkr.ecr.ap-southeast-2.amazonaws.com"
)

// opsHost is one isolated host user for refresh and doctor: fake AWS, a
// private HOME, token cache and docker config directory.
type opsHost struct {
	t        *testing.T
	aws      *fakeaws.Server
	home     string
	cfgDir   string
	cacheDir string
	extra    []string
}

func newOpsHost(t *testing.T, opts fakeaws.Options) *opsHost {
	t.Helper()
	h := &opsHost{t: t, aws: fakeaws.Start(t, opts), home: t.TempDir()}
	h.cfgDir = filepath.Join(h.home, "docker-config")
	h.cacheDir = filepath.Join(h.home, "cache")
	if err := os.Mkdir(h.cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.aws.AddUser(opsUserKey, opsUserSecret, opsUserARN)
	h.extra = h.aws.UserEnv(opsUserKey)
	return h
}

func (h *opsHost) env(extra ...string) []string {
	env := append([]string{
		"PATH=" + opsBinDir(h.t) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + h.home,
		"TOLLGATE_CACHE_DIR=" + h.cacheDir,
		"SPACELIFT_DOCKER_CONFIG_DIR=" + h.cfgDir,
		"XDG_CACHE_HOME=" + filepath.Join(h.home, ".cache"),
		// Failure tests should not wait out the engine's full retry budget.
		"TOLLGATE_ECR_RETRY_BUDGET=3s",
	}, h.aws.Env()...)
	env = append(env, h.extra...)
	return append(env, extra...)
}

func (h *opsHost) tollgate(args ...string) opsRun {
	h.t.Helper()
	r := opsRunCmd(h.t, 60*time.Second, h.env(), opsTollgate(h.t), args...)
	h.noSecretsIn(r.stdout + r.stderr)
	return r
}

// noSecretsIn fails the test if any token the fake minted appears in out.
func (h *opsHost) noSecretsIn(out string) {
	h.t.Helper()
	for _, p := range h.aws.MintedPasswords() {
		if strings.Contains(out, p) {
			h.t.Fatalf("a registry token appears in the output:\n%s", out)
		}
	}
	if strings.Contains(out, opsUserSecret) {
		h.t.Fatal("the AWS secret key appears in the output")
	}
}

func (h *opsHost) configPath() string { return filepath.Join(h.cfgDir, "config.json") }

// authsOf reads a docker config's auths.
// readWithModTime reads a file and the time it was last written through
// one descriptor, so that a rename replacing the file in between cannot pair
// one version's content with another's time.
func readWithModTime(path string) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := io.ReadAll(f)
	return data, fi.ModTime(), err
}

func opsAuthsOf(t *testing.T, data []byte) map[string]map[string]any {
	t.Helper()
	var c struct {
		Auths map[string]map[string]any `json:"auths"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker config: %v\n%s", err, data)
	}
	return c.Auths
}

// tokenOf decodes an auths entry's "auth" and checks it is a token the fake
// minted and that has not expired; it returns the password.
func (h *opsHost) tokenOf(entry map[string]any) string {
	h.t.Helper()
	raw, _ := entry["auth"].(string)
	dec, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		h.t.Fatalf("auth %q is not base64", raw)
	}
	user, pass, _ := strings.Cut(string(dec), ":")
	if user != "AWS" {
		h.t.Fatalf("auth user %q, want AWS", user)
	}
	if arn, ok := h.aws.CheckToken(user, pass); !ok || arn != opsUserARN {
		h.t.Fatalf("auth holds a token the fake does not accept (arn %q, ok %v)", arn, ok)
	}
	return pass
}

func opsLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

func TestRefreshWritesEntriesAndKeepsTheRest(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	ghcr := base64.StdEncoding.EncodeToString([]byte("octo:ghp_secret"))
	orig := `{
	"auths": {
		"ghcr.io": {"auth": "` + ghcr + `", "email": "octo@example.com"},
		"https://` + opsHostC + `": {}
	},
	"credHelpers": {"gcr.io": "gcloud"},
	"credsStore": "tollgate",
	"detachKeys": "ctrl-e,e"
}
`
	if err := os.WriteFile(h.configPath(), []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.tollgate("refresh", "--registry", opsHostA, "--registry", "public.ecr.aws")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// One line per registry: the two named and the one already in the config.
	lines := opsLines(r.stdout)
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got:\n%s", r.stdout)
	}
	for i, host := range []string{opsHostC, opsHostA, "public.ecr.aws"} {
		f := strings.Fields(lines[i])
		if len(f) < 4 || f[0] != host || f[1] != "ok" || f[2] != "expires" {
			t.Errorf("line %q: want %q ok expires ...", lines[i], host)
			continue
		}
		if exp, err := time.Parse(time.RFC3339, f[3]); err != nil || exp.Before(time.Now().Add(11*time.Hour)) {
			t.Errorf("line %q: expiry %v, %v", lines[i], exp, err)
		}
	}
	data, err := os.ReadFile(h.configPath())
	if err != nil {
		t.Fatal(err)
	}
	auths := opsAuthsOf(t, data)
	tokA := h.tokenOf(auths[opsHostA])
	h.tokenOf(auths["public.ecr.aws"])
	h.tokenOf(auths["https://"+opsHostC]) // the operator's key style is kept
	if _, dup := auths[opsHostC]; dup {
		t.Error("a second entry was added for a host the config already had")
	}
	if auths["ghcr.io"]["auth"] != ghcr || auths["ghcr.io"]["email"] != "octo@example.com" {
		t.Errorf("ghcr.io entry changed: %v", auths["ghcr.io"])
	}
	for _, want := range []string{`"detachKeys": "ctrl-e,e"`, `"gcr.io": "gcloud"`, `"credsStore": "tollgate"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("lost %s:\n%s", want, data)
		}
	}
	fi, _ := os.Stat(h.configPath())
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(h.cfgDir)
	for _, e := range ents {
		if e.Name() != "config.json" && e.Name() != "config.json.lock" {
			t.Errorf("left behind in the config dir: %s", e.Name())
		}
	}
	minted := h.aws.Calls(fakeaws.APIECRGetAuthorizationToken) + h.aws.Calls(fakeaws.APIECRPublicGetAuthorizationToken)

	// The helper reads the cache the refresh warmed: same token, no call.
	helper := filepath.Join(opsBinDir(t), "docker-credential-tollgate")
	cmd := exec.Command(helper, "get")
	cmd.Env = append(h.env(), "PATH="+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader(opsHostA)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper get: %v", err)
	}
	var got struct{ Username, Secret string }
	if err := json.Unmarshal(out, &got); err != nil || got.Secret != tokA {
		t.Errorf("helper returned another token than refresh wrote (%v)", err)
	}
	// A second refresh finds the tokens outside the margin: no new mint, and
	// the file keeps the same tokens.
	if r := h.tollgate("refresh", "--registry", opsHostA, "--registry", "public.ecr.aws"); r.code != 0 {
		t.Fatalf("second run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := h.aws.Calls(fakeaws.APIECRGetAuthorizationToken) + h.aws.Calls(fakeaws.APIECRPublicGetAuthorizationToken); n != minted {
		t.Errorf("helper + second refresh made %d more GetAuthorizationToken calls, want 0 (%s)", n-minted, h.aws)
	}
	data2, _ := os.ReadFile(h.configPath())
	if !bytes.Equal(data, data2) {
		t.Errorf("second run rewrote the file with other tokens")
	}
}

func TestRefreshThrottledIsRetried(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	h.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 2})
	r := h.tollgate("refresh", "--registry", opsHostA)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := h.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 3 {
		t.Errorf("GetAuthorizationToken calls %d, want 3 (two throttled, one answered)", n)
	}
	data, _ := os.ReadFile(h.configPath())
	h.tokenOf(opsAuthsOf(t, data)[opsHostA])
}

func TestRefreshFailureKeepsStillValidEntry(t *testing.T) {
	// Tokens live 2h and the margin is 3h, so every run mints afresh.
	h := newOpsHost(t, fakeaws.Options{TokenLifetime: 2 * time.Hour})
	args := []string{"refresh", "--margin", "3h", "--registry", opsHostA, "--registry", "public.ecr.aws"}
	if r := h.tollgate(args...); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	data, _ := os.ReadFile(h.configPath())
	first := opsAuthsOf(t, data)
	oldPublic := h.tokenOf(first["public.ecr.aws"])
	oldA := h.tokenOf(first[opsHostA])

	h.aws.Fail(fakeaws.APIECRPublicGetAuthorizationToken, fakeaws.Fault{Deny: true})
	r := h.tollgate(args...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	var failedLine string
	for _, l := range opsLines(r.stdout) {
		if strings.HasPrefix(l, "public.ecr.aws ") {
			failedLine = l
		}
	}
	if f := strings.Fields(failedLine); len(f) < 2 || f[1] != "failed" || !strings.Contains(failedLine, "access denied") {
		t.Errorf("public.ecr.aws line %q: want failed, access denied", failedLine)
	}
	data, _ = os.ReadFile(h.configPath())
	second := opsAuthsOf(t, data)
	if got := h.tokenOf(second["public.ecr.aws"]); got != oldPublic {
		t.Error("the failed registry's still-valid entry was replaced")
	}
	if got := h.tokenOf(second[opsHostA]); got == oldA {
		t.Error("the registry that succeeded was not refreshed")
	}
}

func TestRefreshLoopRefreshesBeforeExpiry(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{TokenLifetime: 6 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, opsTollgate(t), "refresh", "--loop", "--margin", "3s", "--registry", opsHostA)
	cmd.Env = append(h.env(), "PATH="+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Watch the file: each token must be replaced before it expires.
	seen := []string{}
	testwait.Eventually(t, 30*time.Second, func() error {
		if len(seen) >= 3 {
			return nil
		}
		// (Not stderr: the process is still writing it.)
		notYet := fmt.Errorf("saw %d tokens with 6s tokens and a 3s margin, want 3", len(seen))
		data, written, err := readWithModTime(h.configPath())
		if err != nil {
			return notYet
		}
		e := opsAuthsOf(t, data)[opsHostA]
		raw, _ := e["auth"].(string)
		dec, _ := base64.StdEncoding.DecodeString(raw)
		_, pass, _ := strings.Cut(string(dec), ":")
		if pass == "" || (len(seen) > 0 && seen[len(seen)-1] == pass) {
			return notYet
		}
		info, ok := h.aws.TokenInfo(pass)
		if !ok {
			t.Fatal("file holds a token the fake did not mint")
		}
		if len(seen) > 0 {
			// When the file was written, not when this loop looked: a
			// loaded machine may wake the loop late.
			prev, _ := h.aws.TokenInfo(seen[len(seen)-1])
			if !written.Before(prev.ExpiresAt) {
				t.Errorf("token %d was replaced after it expired (expired %v, file written %v)", len(seen), prev.ExpiresAt, written)
			}
		}
		if !time.Now().Before(info.ExpiresAt) {
			t.Errorf("the file holds an expired token")
		}
		seen = append(seen, pass)
		if len(seen) >= 3 {
			return nil
		}
		return notYet
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("refresh --loop did not exit within 10s of SIGTERM")
	}
	h.noSecretsIn(stdout.String() + stderr.String())
	if n := strings.Count(stderr.String(), "refresh cycle"); n < 2 {
		t.Errorf("%d cycles logged, want one per cycle:\n%s", n, stderr.String())
	}
	if !strings.Contains(stderr.String(), "refresh loop stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr.String())
	}
}

func TestRefreshKubernetesSecret(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	r := h.tollgate("refresh", "--format", "kubernetes-secret", "--namespace", "ci", "--name", "ecr-pull", "--registry", opsHostA, "--registry", opsHostB)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The report goes to stderr; stdout is the manifest alone.
	if len(opsLines(r.stderr)) != 2 || !strings.Contains(r.stderr, opsHostA+"  ok") {
		t.Errorf("stderr report:\n%s", r.stderr)
	}
	var s struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Type       string `yaml:"type"`
		Metadata   struct {
			Name, Namespace string
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	dec := yaml.NewDecoder(strings.NewReader(r.stdout))
	dec.KnownFields(false)
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("manifest does not decode as YAML: %v\n%s", err, r.stdout)
	}
	if s.APIVersion != "v1" || s.Kind != "Secret" || s.Type != "kubernetes.io/dockerconfigjson" || s.Metadata.Name != "ecr-pull" || s.Metadata.Namespace != "ci" {
		t.Errorf("manifest header %+v", s)
	}
	raw, err := base64.StdEncoding.DecodeString(s.Data[".dockerconfigjson"])
	if err != nil {
		t.Fatalf(".dockerconfigjson is not base64: %v", err)
	}
	auths := opsAuthsOf(t, raw)
	if len(auths) != 2 {
		t.Errorf("auths has %d entries, want 2", len(auths))
	}
	h.tokenOf(auths[opsHostA])
	h.tokenOf(auths[opsHostB])
	if _, err := os.Stat(h.configPath()); err == nil {
		t.Error("--format kubernetes-secret also wrote the docker config")
	}
}

func TestRefreshUsageErrors(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"refresh"}, "no ECR registry"},
		{[]string{"refresh", "--loop"}, "no ECR registry"},
		{[]string{"refresh", "--registry", "ghcr.io"}, "not an Amazon ECR"},
		{[]string{"refresh", "--registry", opsHostA, "--format", "yaml"}, "unknown --format"},
		{[]string{"refresh", "--registry", opsHostA, "--format", "kubernetes-secret"}, "needs --name"},
		{[]string{"refresh", "--registry", opsHostA, "--format", "kubernetes-secret", "--name", "Bad_Name"}, "not a valid Kubernetes name"},
		{[]string{"refresh", "--registry", opsHostA, "--bogus"}, "flag provided but not defined"},
	} {
		r := h.tollgate(c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if n := h.aws.Calls(""); n != 0 {
		t.Errorf("usage errors made AWS calls: %s", h.aws)
	}
}

func TestRefreshOutputFiles(t *testing.T) {
	h := newOpsHost(t, fakeaws.Options{})
	// A docker config elsewhere: written there, the config dir left alone.
	out := filepath.Join(h.home, "ci", "docker.json")
	r := h.tollgate("refresh", "--registry", opsHostA, "--output", out)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	h.tokenOf(opsAuthsOf(t, data)[opsHostA])
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("--output mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(h.configPath()); err == nil {
		t.Error("--output also wrote the config dir's config.json")
	}

	// A Secret file from an earlier run (or kubectl get -o yaml) is the
	// starting point: the registry it holds is refreshed too, and an entry
	// for another registry survives.
	secret := filepath.Join(h.home, "secret.yaml")
	other := base64.StdEncoding.EncodeToString([]byte(`{"auths":{"quay.io":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("bot:pw")) + `"}}}`))
	os.WriteFile(secret, []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ecr-pull\n  resourceVersion: \"42\"\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: "+other+"\n"), 0o600)
	r = h.tollgate("refresh", "--format", "kubernetes-secret", "--name", "ecr-pull", "--output", secret, "--registry", opsHostB)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r.stdout == "" || strings.Contains(r.stdout, "apiVersion") {
		t.Errorf("with --output, stdout should carry the report, not the manifest:\n%s", r.stdout)
	}
	var s struct {
		Metadata map[string]any    `yaml:"metadata"`
		Data     map[string]string `yaml:"data"`
	}
	b, _ := os.ReadFile(secret)
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Metadata["resourceVersion"]; ok {
		t.Error("server-side metadata (resourceVersion) was carried over; apply would conflict")
	}
	raw, _ := base64.StdEncoding.DecodeString(s.Data[".dockerconfigjson"])
	auths := opsAuthsOf(t, raw)
	h.tokenOf(auths[opsHostB])
	if auths["quay.io"]["auth"] != base64.StdEncoding.EncodeToString([]byte("bot:pw")) {
		t.Errorf("quay.io entry lost: %v", auths)
	}
}

func TestRefreshThrottledPastBudgetKeepsCachedToken(t *testing.T) {
	// Tokens live 2h and the margin is 3h: the second run must mint, and
	// AWS keeps throttling it past the retry budget (3s here).
	h := newOpsHost(t, fakeaws.Options{TokenLifetime: 2 * time.Hour})
	args := []string{"refresh", "--margin", "3h", "--registry", opsHostA}
	if r := h.tollgate(args...); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	data, _ := os.ReadFile(h.configPath())
	before := h.tokenOf(opsAuthsOf(t, data)[opsHostA])
	h.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 1000})
	r := h.tollgate(args...)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if f := strings.Fields(r.stdout); len(f) < 2 || f[1] != "failed" || !strings.Contains(r.stdout, "still valid, was kept") {
		t.Errorf("report %q: want failed, cached token kept", r.stdout)
	}
	if n := h.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n < 3 {
		t.Errorf("GetAuthorizationToken calls %d: the throttled mint was not retried", n)
	}
	data, _ = os.ReadFile(h.configPath())
	if got := h.tokenOf(opsAuthsOf(t, data)[opsHostA]); got != before {
		t.Error("the entry changed although no new token was minted")
	}
}
