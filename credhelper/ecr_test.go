package credhelper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spacelift-io/tollgate/ecr"
	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/internal/credsource"
)

const ecrHost = "111111111111.dkr.ecr.us-west-2.amazonaws.com"

// ecrHelper returns a helper over a real token engine whose AWS SDK talks to
// fake AWS endpoints on loopback.
func ecrHelper(t *testing.T) (*Helper, *fakeaws.Server) {
	t.Helper()
	s := fakeaws.Start(t, fakeaws.Options{})
	s.UseEnv(t)
	s.SetInstanceRole("ci-worker", "arn:aws:iam::111111111111:role/ci-worker")
	e, err := ecr.NewEngine(ecr.Options{CacheDir: t.TempDir(), RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return NewHelper(&Resolver{ECR: e}), s
}

func TestHelperGetECR(t *testing.T) {
	h, s := ecrHelper(t)
	var out bytes.Buffer
	err := credentials.HandleCommand(h, credentials.ActionGet, strings.NewReader("https://"+ecrHost+"/v2/\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	var c credentials.Credentials
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if c.ServerURL != "https://"+ecrHost+"/v2/" || c.Username != ECRUsername {
		t.Fatalf("got %+v", c)
	}
	if arn, ok := s.CheckToken(c.Username, c.Secret); !ok || arn != s.InstanceCallerARN() {
		t.Fatalf("secret is not a token of the instance role: %q %v", arn, ok)
	}
	// Public ECR too.
	u, p, err := h.Get("public.ecr.aws")
	if err != nil || u != "AWS" {
		t.Fatalf("public: %q %v", u, err)
	}
	if m, ok := s.TokenInfo(p); !ok || !m.Public {
		t.Fatal("public token not from ECR Public")
	}
}

func TestHelperRealFailureIsNotNotFound(t *testing.T) {
	h, s := ecrHelper(t)
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	_, _, err := h.Get(ecrHost)
	if err == nil || credentials.IsErrCredentialsNotFound(err) || credsource.IsNotFound(err) {
		t.Fatalf("access denied reported as %v", err)
	}
	if !errors.Is(err, ecr.ErrAccessDenied) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err %q", err)
	}
}

func TestHelperNonECRWithoutLogins(t *testing.T) {
	h, s := ecrHelper(t)
	if _, _, err := h.Get("ghcr.io"); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("ghcr.io: %v", err)
	}
	// A look-alike is not ECR: no AWS call, just not found.
	if _, _, err := h.Get(ecrHost + ".evil.example"); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("look-alike: %v", err)
	}
	if err := h.Add(&credentials.Credentials{ServerURL: "ghcr.io", Username: "u", Secret: "p"}); err == nil ||
		!strings.Contains(err.Error(), "SPACELIFT_DOCKER_CONFIG_DIR") {
		t.Fatalf("store without a login store: %v", err)
	}
	if n := s.Calls(""); n != 0 {
		t.Fatalf("%d AWS calls for non-ECR hosts", n)
	}
}

func TestHelperStoreEraseListECR(t *testing.T) {
	h, s := ecrHelper(t)
	// docker login to an ECR host: accepted, nothing written, no AWS call.
	in := `{"ServerURL":"` + ecrHost + `","Username":"AWS","Secret":"pasted-token"}`
	if err := credentials.HandleCommand(h, credentials.ActionStore, strings.NewReader(in), &bytes.Buffer{}); err != nil {
		t.Fatalf("store: %v", err)
	}
	if err := credentials.HandleCommand(h, credentials.ActionErase, strings.NewReader(ecrHost), &bytes.Buffer{}); err != nil {
		t.Fatalf("erase: %v", err)
	}
	var out bytes.Buffer
	if err := credentials.HandleCommand(h, credentials.ActionList, nil, &out); err != nil {
		t.Fatalf("list: %v", err)
	}
	if strings.TrimSpace(out.String()) != "{}" {
		t.Fatalf("list = %q", out.String())
	}
	if n := s.Calls(""); n != 0 {
		t.Fatalf("store/erase/list made %d AWS calls", n)
	}
	// The pasted token was not kept: get mints a real one.
	u, p, err := h.Get(ecrHost)
	if err != nil || p == "pasted-token" || u != "AWS" {
		t.Fatalf("get after store: %q %v", u, err)
	}
}

// loginMap is a minimal in-memory LoginStore to check the resolver's order
// and its treatment of typed-nil stores.
type loginMap map[string][2]string

func (m loginMap) Get(_ context.Context, s string) (string, string, error) {
	if v, ok := m[s]; ok {
		return v[0], v[1], nil
	}
	return "", "", credentials.NewErrCredentialsNotFound()
}
func (m loginMap) Put(_ context.Context, s, u, p string) error { m[s] = [2]string{u, p}; return nil }
func (m loginMap) Erase(_ context.Context, s string) error     { delete(m, s); return nil }
func (m loginMap) List(context.Context) (map[string]string, error) {
	r := map[string]string{}
	for k, v := range m {
		r[k] = v[0]
	}
	return r, nil
}

func TestResolverOrder(t *testing.T) {
	h, _ := ecrHelper(t)
	logins := loginMap{ecrHost: {"someone", "stored"}, "ghcr.io": {"u", "p"}}
	r := &Resolver{ECR: h.r.ECR, Logins: logins}
	ctx := context.Background()
	// ECR hosts are minted even when a login is stored for them.
	if u, p, err := r.Credentials(ctx, ecrHost); err != nil || u != "AWS" || p == "stored" {
		t.Fatalf("ECR host: %q %v", u, err)
	}
	if u, p, err := r.Credentials(ctx, "ghcr.io"); err != nil || u != "u" || p != "p" {
		t.Fatalf("ghcr.io: %q %q %v", u, p, err)
	}
	if _, _, err := r.Credentials(ctx, "quay.io"); !errors.Is(err, credsource.ErrNotFound) {
		t.Fatalf("quay.io: %v", err)
	}
	// A typed nil store means "no logins", not a crash.
	var none *nilStore
	r2 := &Resolver{Logins: none}
	if _, _, err := r2.Credentials(ctx, "ghcr.io"); !errors.Is(err, credsource.ErrNotFound) {
		t.Fatalf("typed nil store: %v", err)
	}
}

type nilStore struct{ loginMap }

func TestPublicECRFallsBackToAnonymous(t *testing.T) {
	h, s := ecrHelper(t)
	s.Fail(fakeaws.APIECRPublicGetAuthorizationToken, fakeaws.Fault{Deny: true})
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	if _, _, err := h.Get("public.ecr.aws"); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("public.ecr.aws without a token: %v, want not found (anonymous pull)", err)
	}
	// A private registry's failure stays a failure.
	if _, _, err := h.Get(ecrHost); !errors.Is(err, ecr.ErrAccessDenied) {
		t.Fatalf("private: %v", err)
	}
}
