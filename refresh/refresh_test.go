package refresh

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/dockerconfig"
)

const (
	hostA = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
	hostB = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
)

// tableMinter answers from a table: a token per host, or an error.
type tableMinter struct {
	mu     sync.Mutex
	tokens map[string]Token
	errs   map[string]error
	calls  map[string]int
}

func (m *tableMinter) Refresh(ctx context.Context, host string) (Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls == nil {
		m.calls = map[string]int{}
	}
	m.calls[host]++
	if err := m.errs[host]; err != nil {
		return Token{}, err
	}
	t, ok := m.tokens[host]
	if !ok {
		return Token{}, errors.New("unknown host")
	}
	return t, nil
}

func readAuths(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Auths map[string]map[string]any `json:"auths"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Auths
}

func authOf(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestOnceWritesGoodKeepsOthersAndFailedEntries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	orig := `{
	"auths": {
		"` + hostB + `": {"auth": "` + authOf("AWS", "old-b") + `"},
		"ghcr.io": {"auth": "` + authOf("u", "p") + `", "email": "x@y"}
	},
	"credHelpers": {"gcr.io": "gcloud"},
	"psFormat": "table {{.ID}}"
}`
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(12 * time.Hour).Truncate(time.Second)
	m := &tableMinter{
		tokens: map[string]Token{hostA: {Username: "AWS", Password: "new-a", ExpiresAt: exp}},
		errs:   map[string]error{hostB: errors.New("throttled")},
	}
	sink := ConfigDir{Store: &dockerconfig.Store{Dir: dir, Self: "tollgate"}}
	r := &Refresher{Minter: m, Sink: sink, Registries: []string{hostA}, Sources: []HostSource{sink}}
	rep, err := r.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Failed() != 1 || len(rep.Results) != 2 {
		t.Fatalf("report %+v: want hostA ok, hostB failed", rep)
	}
	if m.calls[hostB] != 1 {
		t.Errorf("hostB (from the config's auths) was not refreshed: %v", m.calls)
	}
	auths := readAuths(t, path)
	if auths[hostA]["auth"] != authOf("AWS", "new-a") {
		t.Errorf("hostA entry %v", auths[hostA])
	}
	if auths[hostB]["auth"] != authOf("AWS", "old-b") {
		t.Errorf("failed hostB's still-valid entry changed: %v", auths[hostB])
	}
	if auths["ghcr.io"]["email"] != "x@y" {
		t.Errorf("other entry lost a field: %v", auths["ghcr.io"])
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"psFormat"`) || !strings.Contains(string(b), `"gcloud"`) {
		t.Errorf("other fields lost:\n%s", b)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

func TestOnceNothingToDo(t *testing.T) {
	dir := t.TempDir()
	sink := ConfigFile{Path: filepath.Join(dir, "out.json")}
	r := &Refresher{Minter: &tableMinter{}, Sink: sink, Sources: []HostSource{sink}}
	if _, err := r.Once(context.Background()); !errors.Is(err, ErrNoRegistries) {
		t.Fatalf("err %v, want ErrNoRegistries", err)
	}
	r.Registries = []string{"ghcr.io"}
	if _, err := r.Once(context.Background()); err == nil || !strings.Contains(err.Error(), "ghcr.io") {
		t.Fatalf("non-ECR registry: err %v", err)
	}
}

func TestConfigFileCorruptIsNotOverwritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	bad := []byte(`{"auths": {`)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	m := &tableMinter{tokens: map[string]Token{hostA: {Username: "AWS", Password: "p", ExpiresAt: time.Now().Add(time.Hour)}}}
	r := &Refresher{Minter: m, Sink: ConfigFile{Path: path}, Registries: []string{hostA}}
	rep, err := r.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.WriteErr == nil || !errors.Is(rep.WriteErr, dockerconfig.ErrCorrupt) || rep.OK() {
		t.Fatalf("write error %v, want ErrCorrupt", rep.WriteErr)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, bad) {
		t.Fatalf("corrupt file was rewritten: %q", b)
	}
}

func TestKubernetesSecretRoundTripAndMerge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.yaml")
	exp := time.Now().Add(12 * time.Hour)
	m := &tableMinter{tokens: map[string]Token{
		hostA: {Username: "AWS", Password: "a1", ExpiresAt: exp},
		hostB: {Username: "AWS", Password: "b1", ExpiresAt: exp},
	}}
	sink := KubernetesSecret{Name: "ecr-pull", Namespace: "ci", Path: path}
	r := &Refresher{Minter: m, Sink: sink, Registries: []string{hostA, hostB}, Sources: []HostSource{sink}}
	if rep, err := r.Once(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("%+v %v", rep, err)
	}
	// Second run: B fails; its entry from the first run stays.
	m.tokens[hostA] = Token{Username: "AWS", Password: "a2", ExpiresAt: exp}
	m.errs = map[string]error{hostB: errors.New("down")}
	r.Registries = []string{hostA}
	if rep, err := r.Once(context.Background()); err != nil || rep.Failed() != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	data, _ := os.ReadFile(path)
	s, f, err := ParseSecret(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Metadata.Name != "ecr-pull" || s.Metadata.Namespace != "ci" || s.Type != SecretType || s.APIVersion != "v1" {
		t.Errorf("secret %+v", s)
	}
	if _, err := time.Parse(time.RFC3339, s.Metadata.Annotations[ExpiresAnnotation]); err != nil {
		t.Errorf("expiry annotation: %v", err)
	}
	for host, want := range map[string]string{hostA: "a2", hostB: "b1"} {
		u, p, ok, err := f.Auth(host)
		if err != nil || !ok || u != "AWS" || p != want {
			t.Errorf("%s: %q %q %v %v, want AWS %s", host, u, p, ok, err, want)
		}
	}
	// Something else at --output is not overwritten.
	other := []byte("apiVersion: v1\nkind: ConfigMap\n")
	_ = os.WriteFile(path, other, 0o600)
	rep, _ := r.Once(context.Background())
	if b, _ := os.ReadFile(path); !bytes.Equal(b, other) {
		t.Fatal("a ConfigMap at --output was overwritten")
	}
	_ = rep
}

// A Secret fetched with `kubectl get secret -o yaml` keeps its labels and
// annotations through a refresh; kubectl's last-applied-configuration (the
// old data) and the fields the API server sets are not written back.
func TestKubernetesSecretKeepsLabelsAndAnnotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.yaml")
	oldCfg := base64.StdEncoding.EncodeToString([]byte(`{"auths":{"` + hostB + `":{"auth":"` +
		base64.StdEncoding.EncodeToString([]byte("AWS:b0")) + `"}}}`))
	fetched := `apiVersion: v1
kind: Secret
metadata:
  name: ecr-pull
  namespace: ci
  uid: 0b1c2d3e-0000-4000-8000-000000000001
  resourceVersion: "4711"
  creationTimestamp: "2026-11-01T00:00:00Z"
  labels:
    team: platform
    app.kubernetes.io/managed-by: someone-else
  annotations:
    owner: platform@example.com
    kubectl.kubernetes.io/last-applied-configuration: '{"data":{".dockerconfigjson":"` + oldCfg + `"}}'
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: ` + oldCfg + "\n"
	if err := os.WriteFile(path, []byte(fetched), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(12 * time.Hour)
	m := &tableMinter{tokens: map[string]Token{hostA: {Username: "AWS", Password: "a1", ExpiresAt: exp}}}
	sink := KubernetesSecret{Name: "ecr-pull", Namespace: "ci", Path: path}
	r := &Refresher{Minter: m, Sink: sink, Registries: []string{hostA}}
	if rep, err := r.Once(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("%+v %v", rep, err)
	}
	data, _ := os.ReadFile(path)
	s, f, err := ParseSecret(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Metadata.Labels; got["team"] != "platform" || got["app.kubernetes.io/managed-by"] != "tollgate" || len(got) != 2 {
		t.Errorf("labels %v", got)
	}
	if got := s.Metadata.Annotations; got["owner"] != "platform@example.com" || got[ExpiresAnnotation] == "" || len(got) != 2 {
		t.Errorf("annotations %v", got)
	}
	for _, gone := range []string{"uid", "resourceVersion", "creationTimestamp", "last-applied"} {
		if bytes.Contains(data, []byte(gone)) {
			t.Errorf("%q written back:\n%s", gone, data)
		}
	}
	if _, p, ok, _ := f.Auth(hostB); !ok || p != "b0" {
		t.Errorf("the entry of a registry not refreshed was lost: %q %v", p, ok)
	}
}

// A Secret fetched with `kubectl get secret -n ci -o yaml` and refreshed
// without --namespace stays in its namespace: dropping it would make
// `kubectl apply -f FILE` write to the context's default namespace, and the
// Secret the pods use would go stale. --namespace, when given, wins.
func TestKubernetesSecretKeepsItsNamespace(t *testing.T) {
	fetched := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ecr-pull\n  namespace: ci\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: e30=\n"
	exp := time.Now().Add(12 * time.Hour)
	for _, c := range []struct{ flag, want string }{{"", "ci"}, {"prod", "prod"}} {
		path := filepath.Join(t.TempDir(), "secret.yaml")
		if err := os.WriteFile(path, []byte(fetched), 0o600); err != nil {
			t.Fatal(err)
		}
		m := &tableMinter{tokens: map[string]Token{hostA: {Username: "AWS", Password: "a1", ExpiresAt: exp}}}
		r := &Refresher{Minter: m, Sink: KubernetesSecret{Name: "ecr-pull", Namespace: c.flag, Path: path}, Registries: []string{hostA}}
		if rep, err := r.Once(context.Background()); err != nil || !rep.OK() {
			t.Fatalf("%+v %v", rep, err)
		}
		data, _ := os.ReadFile(path)
		s, _, err := ParseSecret(path, data)
		if err != nil {
			t.Fatal(err)
		}
		if s.Metadata.Namespace != c.want {
			t.Errorf("--namespace %q on a Secret of namespace ci: written to namespace %q, want %q", c.flag, s.Metadata.Namespace, c.want)
		}
	}
}

func TestValidateSecretName(t *testing.T) {
	for _, c := range []struct {
		name, ns string
		ok       bool
	}{
		{"ecr-pull", "ci", true},
		{"ecr.pull", "", true},
		{"ECR", "ci", false},
		{"", "ci", false},
		{"a", "bad_ns", false},
		{"a", strings.Repeat("n", 64), false},
	} {
		if err := ValidateSecretName(c.name, c.ns); (err == nil) != c.ok {
			t.Errorf("%q/%q: %v", c.name, c.ns, err)
		}
	}
}

func TestNextRun(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := LoopOptions{Margin: time.Hour, RetryMin: 10 * time.Second, RetryMax: 5 * time.Minute, MaxSleep: 24 * time.Hour}
	ok := Report{Results: []Result{{Host: hostA, ExpiresAt: now.Add(12 * time.Hour)}}}
	for _, r := range []float64{0, 0.5, 0.999} {
		o.Rand = func() float64 { return r }
		got := NextRun(ok, now, 0, o)
		lo, hi := now.Add(11*time.Hour), now.Add(11*time.Hour+30*time.Minute)
		if got.Before(lo) || got.After(hi) {
			t.Errorf("rand %v: next %v, want within [%v, %v]", r, got.Sub(now), lo.Sub(now), hi.Sub(now))
		}
	}
	o.Rand = func() float64 { return 0 }
	a, b := NextRun(ok, now, 0, o), NextRun(ok, now, 0, LoopOptions{Margin: time.Hour, MaxSleep: 24 * time.Hour, Rand: func() float64 { return 0.9 }})
	if !b.After(a) {
		t.Error("jitter does not move the next run")
	}
	// A token shorter than the margin: about half its life, not at once.
	short := Report{Results: []Result{{Host: hostA, ExpiresAt: now.Add(10 * time.Minute)}}}
	if got := NextRun(short, now, 0, o).Sub(now); got != 5*time.Minute {
		t.Errorf("short token: next in %v, want 5m", got)
	}
	// Capped by MaxSleep.
	if got := NextRun(ok, now, 0, LoopOptions{Margin: time.Hour, MaxSleep: 15 * time.Minute}).Sub(now); got != 15*time.Minute {
		t.Errorf("MaxSleep: next in %v", got)
	}
	// Failures back off, doubling, capped.
	fail := Report{Results: []Result{{Host: hostA, Err: errors.New("x")}, {Host: hostB, ExpiresAt: now.Add(12 * time.Hour)}}}
	o.Rand = func() float64 { return 0.999 }
	prev := time.Duration(0)
	for n := 1; n <= 10; n++ {
		got := NextRun(fail, now, n, o).Sub(now)
		if got < prev || got > o.RetryMax || got < o.RetryMin/2 {
			t.Errorf("failure %d: next in %v (previous %v)", n, got, prev)
		}
		prev = got
	}
	if prev < o.RetryMax*9/10 {
		t.Errorf("backoff never reached the cap: %v", prev)
	}
}

func TestLoopStopsOnCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	m := &tableMinter{tokens: map[string]Token{hostA: {Username: "AWS", Password: "p", ExpiresAt: time.Now().Add(12 * time.Hour)}}}
	r := &Refresher{Minter: m, Sink: ConfigFile{Path: path}, Registries: []string{hostA}}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan Report, 10)
	done := make(chan error)
	go func() {
		done <- r.Loop(ctx, LoopOptions{Report: func(rep Report, err error) { runs <- rep }})
	}()
	select {
	case rep := <-runs:
		if !rep.OK() {
			t.Fatalf("%+v", rep)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no run")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Loop did not return after cancel")
	}
}

func TestRootKeepsTheFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks that a file root rewrites keeps its owner")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	m := &tableMinter{tokens: map[string]Token{hostA: {Username: "AWS", Password: "p", ExpiresAt: time.Now().Add(time.Hour)}}}
	for name, sink := range map[string]Sink{
		"--output":   ConfigFile{Path: path},
		"config dir": ConfigDir{Store: &dockerconfig.Store{Dir: dir, Self: "tollgate"}},
	} {
		if err := os.WriteFile(path, []byte(`{}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 1983, 1983); err != nil {
			t.Fatal(err)
		}
		r := &Refresher{Minter: m, Sink: sink, Registries: []string{hostA}}
		if rep, err := r.Once(context.Background()); err != nil || !rep.OK() {
			t.Fatalf("%s: %+v %v", name, rep, err)
		}
		fi, _ := os.Stat(path)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1983 || st.Gid != 1983 {
			t.Errorf("%s: owner %d:%d, want 1983:1983", name, st.Uid, st.Gid)
		}
		if readAuths(t, path)[hostA]["auth"] != authOf("AWS", "p") {
			t.Errorf("%s: not written", name)
		}
	}
}
