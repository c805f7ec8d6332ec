package integration

// needs: nothing beyond Go: the AWS endpoints are integration/fakeaws, in process.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/integration/harness"
)

// ecrHelperPath returns the docker-credential-tollgate built once per test
// process by the harness, shared with the other integration tests.
func ecrHelperPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(harness.BuildBinaries(t), "docker-credential-tollgate")
}

// ecrHelperEnv is one isolated host user: a fake AWS, a private HOME and
// cache directory, and the built helper.
type ecrHelperEnv struct {
	t    *testing.T
	aws  *fakeaws.Server
	bin  string
	home string
}

func newECRHelperEnv(t *testing.T, opts fakeaws.Options) *ecrHelperEnv {
	t.Helper()
	bin := ecrHelperPath(t)
	return &ecrHelperEnv{t: t, aws: fakeaws.Start(t, opts), bin: bin, home: t.TempDir()}
}

// ageCachedTokens rewrites the expiry of every token the helpers have
// cached, as time passing would, through the cache's own reader and writer:
// a test of the refresh margin or of expiry does not sleep for it.
func (e *ecrHelperEnv) ageCachedTokens(expiresAt time.Time) {
	e.t.Helper()
	d := &tokencache.Disk{Dir: filepath.Join(e.home, "tollgate-cache", "ecr")}
	files, err := filepath.Glob(filepath.Join(d.Dir, "*.json"))
	if err != nil || len(files) == 0 {
		e.t.Fatalf("no cached token in %s to age (%v)", d.Dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		var named tokencache.Entry
		if err := json.Unmarshal(data, &named); err != nil {
			e.t.Fatalf("cache file %s: %v", f, err)
		}
		ent, err := d.Read(named.Scope())
		if err != nil || ent == nil || d.Path(ent.Scope()) != f {
			e.t.Fatalf("cache file %s does not read back as its scope's entry: %+v, %v", f, ent, err)
		}
		ent.ExpiresAt = expiresAt
		if err := d.Write(ent); err != nil {
			e.t.Fatal(err)
		}
	}
}

// environ is the helper's whole environment: the host's, minus anything
// that could point at real AWS, a real cache or a real docker config; the
// fake's endpoints; a private HOME and cache; then extra.
func (e *ecrHelperEnv) environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "TOLLGATE_"), strings.HasPrefix(k, "SPACELIFT_"),
			strings.HasPrefix(k, "DOCKER_"), strings.HasPrefix(k, "XDG_"), k == "HOME":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, e.aws.Env()...)
	env = append(env,
		"HOME="+e.home,
		"TOLLGATE_CACHE_DIR="+filepath.Join(e.home, "tollgate-cache"),
		"XDG_CACHE_HOME="+filepath.Join(e.home, ".cache"),
		"XDG_CONFIG_HOME="+filepath.Join(e.home, ".config"),
	)
	return append(env, extra...)
}

// helperResult is one run of `docker-credential-tollgate get`.
type helperResult struct {
	code           int
	stdout, stderr string
	creds          struct{ ServerURL, Username, Secret string }
}

func (r helperResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// get runs the helper as docker does: `echo host | docker-credential-tollgate get`.
func (e *ecrHelperEnv) get(host string, extra ...string) helperResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "get")
	cmd.Env = e.environ(extra...)
	cmd.Dir = e.home
	cmd.Stdin = strings.NewReader(host + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := helperResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	default:
		e.t.Fatalf("running %s get: %v", e.bin, err)
	}
	if ctx.Err() != nil {
		e.t.Fatalf("%s get %s did not finish in time: %s", e.bin, host, res)
	}
	if res.code == 0 {
		if err := json.Unmarshal(stdout.Bytes(), &res.creds); err != nil {
			e.t.Fatalf("get %s: stdout is not the credentials JSON: %v (%s)", host, err, res)
		}
	}
	e.checkNoLeak(res)
	return res
}

// checkNoLeak fails the test if any token the fake minted, in either of its
// forms, appears on the helper's stderr (or on stdout of a failed get).
func (e *ecrHelperEnv) checkNoLeak(r helperResult) {
	e.t.Helper()
	for _, p := range e.aws.MintedPasswords() {
		for _, form := range []string{p, base64.StdEncoding.EncodeToString([]byte("AWS:" + p))} {
			if strings.Contains(r.stderr, form) {
				e.t.Errorf("a registry token appears on stderr")
			}
			if r.code != 0 && strings.Contains(r.stdout, form) {
				e.t.Errorf("a registry token appears in the error output")
			}
		}
	}
}

// mustGet runs get, requires success, and checks the answer is a live token
// the fake minted for wantARN.
func (e *ecrHelperEnv) mustGet(host, wantARN string, extra ...string) helperResult {
	e.t.Helper()
	r := e.get(host, extra...)
	if r.code != 0 {
		e.t.Fatalf("get %s failed: %s (%s)", host, r, e.aws)
	}
	if r.creds.Username != "AWS" || r.creds.Secret == "" {
		e.t.Fatalf("get %s: Username %q, empty secret %v", host, r.creds.Username, r.creds.Secret == "")
	}
	arn, ok := e.aws.CheckToken(r.creds.Username, r.creds.Secret)
	if !ok {
		e.t.Fatalf("get %s: the secret is not a live token minted by ECR (%s)", host, e.aws)
	}
	if arn != wantARN {
		e.t.Fatalf("get %s: token minted for %s, want %s", host, arn, wantARN)
	}
	return r
}

// userEnv returns static credentials for a user the fake knows.
func (e *ecrHelperEnv) addUser(key, secret, arn string) []string {
	e.aws.AddUser(key, secret, arn)
	return e.aws.UserEnv(key)
}
