package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spacelift-io/tollgate/config"
)

func TestPublicModeSendsNoCredentials(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 2), nil)
	creds := &staticCredentials{host: testHost, user: "bob", secret: "hunter2"}
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, mode: config.ModePublic, credentials: creds})
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatalf("public pull: %v", err)
	}
	if len(up.log.all()) == 0 {
		t.Fatal("upstream saw nothing: the test proves nothing")
	}
	for _, r := range up.log.all() {
		if r.Auth != "" {
			t.Fatalf("public mode sent Authorization upstream: %s %s", r.Method, r.Path)
		}
	}
	if creds.calls != 0 {
		t.Fatalf("public mode looked up credentials %d times", creds.calls)
	}
}

func TestPrivateModeBasicAuthUpstream(t *testing.T) {
	up := startUpstream(t, upstreamOpts{htpasswdUser: "bob", htpasswdPass: "hunter2"})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 2), &authn.Basic{Username: "bob", Password: "hunter2"})

	// With the login: the pull works.
	creds := &staticCredentials{host: testHost, user: "bob", secret: "hunter2"}
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: creds})
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatalf("private pull with login: %v", err)
	}
	if strings.Contains(p.logs.String(), "hunter2") || strings.Contains(p.logs.String(), base64.StdEncoding.EncodeToString([]byte("bob:hunter2"))) {
		t.Fatal("the password reached the log")
	}

	// Public mode in front of the same upstream: refused, nothing cached
	// leaks from the other proxy (separate cache), no credentials sent.
	up.log.reset()
	pub := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: creds, mode: config.ModePublic})
	resp, body := pub.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "UNAUTHORIZED") {
		t.Fatalf("public mode against an authenticated upstream: %d %s", resp.StatusCode, body)
	}
	for _, r := range up.log.all() {
		if r.Auth != "" {
			t.Fatalf("public mode sent Authorization: %+v", r)
		}
	}

	// A login for another host is not used here.
	other := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: &staticCredentials{host: "quay.io", user: "bob", secret: "hunter2"}})
	up.log.reset()
	resp, _ = other.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login for quay.io used for %s: %d", testHost, resp.StatusCode)
	}
}

// tokenRegistry puts Docker token auth in front of an upstream: a token
// service at realm (by default on the registry's own host) that checks
// Basic credentials, and a registry that wants its tokens.
type tokenRegistry struct {
	*httptest.Server
	mu          sync.Mutex
	tokenCalls  int
	tokenAuth   []string
	realm       string // override; default <server>/token
	user, pass  string
	grantedToks map[string]bool
}

func startTokenRegistry(t *testing.T, up *upstream, user, pass string) *tokenRegistry {
	tr := &tokenRegistry{user: user, pass: pass, grantedToks: map[string]bool{}}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tr.issue(w, r)
			return
		}
		tr.mu.Lock()
		ok := tr.grantedToks[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		realm := tr.realm
		tr.mu.Unlock()
		if realm == "" {
			realm = tr.URL + "/token"
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		r2 := r.Clone(r.Context())
		r2.Header.Del("Authorization")
		target, _ := url.Parse(up.URL)
		r2.URL.Scheme, r2.URL.Host, r2.Host = target.Scheme, target.Host, target.Host
		r2.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r2)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(tr.Close)
	return tr
}

func (tr *tokenRegistry) issue(w http.ResponseWriter, r *http.Request) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.tokenCalls++
	tr.tokenAuth = append(tr.tokenAuth, r.Header.Get("Authorization"))
	u, p, ok := r.BasicAuth()
	if tr.user != "" && (!ok || u != tr.user || p != tr.pass) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	tok := "tok-" + string(rune('a'+tr.tokenCalls))
	tr.grantedToks[tok] = true
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}

func TestBearerTokenReusedPerRepository(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 3), nil)
	tr := startTokenRegistry(t, up, "bob", "hunter2")
	creds := &staticCredentials{host: testHost, user: "bob", secret: "hunter2"}
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: tr.URL}, credentials: creds})
	for i := range 3 {
		if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
	}
	tr.mu.Lock()
	calls := tr.tokenCalls
	auth := append([]string(nil), tr.tokenAuth...)
	tr.mu.Unlock()
	if calls != 1 {
		t.Fatalf("token service called %d times for 3 pulls of one repository, want 1", calls)
	}
	if !strings.HasPrefix(auth[0], "Basic ") {
		t.Fatalf("the token service (same host as the registry) did not get the login: %q", auth[0])
	}
	if got := testutil.ToFloat64(p.srv.metrics.tokenRequests.WithLabelValues(testHost)); got != 1 {
		t.Fatalf("token requests metric %v, want 1", got)
	}
}

func TestHostileRealmNeverGetsCredentials(t *testing.T) {
	// The realm's own server: on loopback, reached as "localhost", which the
	// operator did not configure. go-containerregistry accepts this realm
	// (it only refuses IP literals) and would send the Basic login to it.
	var mu sync.Mutex
	var seen []string
	var bodies []string
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		bodies = append(bodies, string(b))
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"token": "anon"})
	}))
	t.Cleanup(realm.Close)
	ru, _ := url.Parse(realm.URL)
	hostileRealm := "http://localhost:" + ru.Port() + "/token"

	for _, tc := range []struct{ name, user, secret string }{
		{"basic login", "bob", "hunter2"},
		{"identity token", "<token>", "refresh-hunter2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, upstreamOpts{})
			up.push(t, "team/app", "v1", randomImage(t, 1024, 1), nil)
			tr := startTokenRegistry(t, up, "", "")
			tr.realm = hostileRealm
			creds := &staticCredentials{host: testHost, user: tc.user, secret: tc.secret}
			p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: tr.URL}, credentials: creds})
			_, _ = p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
			mu.Lock()
			defer mu.Unlock()
			for i, a := range seen {
				if a != "" {
					t.Fatalf("hostile realm received Authorization %q", a)
				}
				if strings.Contains(bodies[i], "hunter2") {
					t.Fatalf("hostile realm received the secret in the body: %q", bodies[i])
				}
			}
			if tc.name == "basic login" && len(seen) == 0 {
				t.Fatal("realm was never asked: the test proves nothing")
			}
		})
	}
}

func TestRealmGuardTrust(t *testing.T) {
	g := &realmGuard{registryHost: "registry-1.docker.io", registryName: "registry-1.docker.io", configured: map[string]bool{"127.0.0.1:5003": true}}
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://registry-1.docker.io/v2/", true},
		{"http://registry-1.docker.io/v2/", false}, // a redirect that downgrades to cleartext
		{"https://auth.docker.io/token", true},
		{"http://auth.docker.io/token", false},
		{"https://docker.io.evil.com/token", false},
		{"https://evildocker.io/token", false},
		{"https://localhost/token", false},
		{"https://10.0.0.1/token", false},
		{"https://[::1]/token", false},
		{"http://127.0.0.1:5003/token", true},  // configured by the operator
		{"http://127.0.0.1:5004/token", false}, // same address, another service
		{"https://169.254.169.254/latest", false},
	} {
		u, _ := url.Parse(tc.url)
		if got := g.trusted(u); got != tc.want {
			t.Errorf("trusted(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
	gl := &realmGuard{registryHost: "registry.gitlab.com", registryName: "registry.gitlab.com"}
	u, _ := url.Parse("https://gitlab.com/jwt/auth")
	if !gl.trusted(u) {
		t.Error("gitlab.com realm not trusted for registry.gitlab.com")
	}
	// Registries on a public suffix (each customer its own name) do not
	// trust each other.
	az := &realmGuard{registryHost: "mine.azurecr.io", registryName: "mine.azurecr.io"}
	u, _ = url.Parse("https://theirs.azurecr.io/oauth2/token")
	if az.trusted(u) {
		t.Error("theirs.azurecr.io trusted with the login of mine.azurecr.io")
	}
	u, _ = url.Parse("https://mine.azurecr.io/oauth2/token")
	if !az.trusted(u) {
		t.Error("mine.azurecr.io's own realm not trusted")
	}
}

func TestPushThroughRemoteIsRefusedWithCredentials(t *testing.T) {
	// Even with a login configured, a client push never reaches upstream
	// as a write.
	up := startUpstream(t, upstreamOpts{htpasswdUser: "bob", htpasswdPass: "hunter2"})
	creds := &staticCredentials{host: testHost, user: "bob", secret: "hunter2"}
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: creds})
	err := remote.Write(p.ref(t, "team/app:v9"), randomImage(t, 100, 1), remote.WithContext(context.Background()))
	if err == nil {
		t.Fatal("push through proxy succeeded")
	}
	for _, r := range up.log.all() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Fatalf("push reached upstream: %+v", r)
		}
	}
}

func TestChangedLoginIsPickedUpAfterRefusal(t *testing.T) {
	up := startUpstream(t, upstreamOpts{htpasswdUser: "bob", htpasswdPass: "new-password"})
	up.push(t, "team/app", "v1", randomImage(t, 1024, 1), &authn.Basic{Username: "bob", Password: "new-password"})
	creds := &staticCredentials{host: testHost, user: "bob", secret: "old-password"}
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: creds})
	resp, _ := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stale login: %d, want 401", resp.StatusCode)
	}
	// The operator fixes the login; the next pull uses it without waiting
	// for any cache to expire.
	creds.mu.Lock()
	creds.secret = "new-password"
	creds.mu.Unlock()
	if _, err := pull(p.ref(t, "team/app:v1")); err != nil {
		t.Fatalf("pull after the login changed: %v", err)
	}
}
