package authz

import (
	"strings"
	"testing"
)

func pullReq(uri string) *Request {
	return &Request{RequestMethod: "POST", RequestURI: uri, RequestHeaders: map[string]string{"Content-Length": "0"}}
}

func createReq(body string) *Request {
	return &Request{RequestMethod: "POST", RequestURI: "/v1.43/containers/create", RequestBody: []byte(body),
		RequestHeaders: map[string]string{"Content-Type": "application/json"}}
}

func TestDecisions(t *testing.T) {
	p := mustPolicy(t, Options{Proxy: "127.0.0.1:5000"}, "ghcr.io/myorg/*", "docker.io", "*.azurecr.io")
	pub := mustPolicy(t, Options{Public: true, Proxy: "127.0.0.1:5000"}, "ghcr.io/myorg/*", "docker.io")
	cases := []struct {
		name  string
		p     *Policy
		req   *Request
		allow bool
		rule  string
		inMsg string // substring of the reason (or message for refusals)
	}{
		{"allowed prefix", p, pullReq("/v1.41/images/create?fromImage=ghcr.io/myorg/app&tag=v1"), true, RuleAllowlist, "ghcr.io/myorg/*"},
		{"denied repository prefix", p, pullReq("/v1.41/images/create?fromImage=ghcr.io/other/app&tag=v1"), false, RuleAllowlist, `add "ghcr.io/other/app"`},
		{"look-alike prefix", p, pullReq("/images/create?fromImage=ghcr.io/myorgevil/app"), false, RuleAllowlist, "not allowed"},
		{"denied host", p, pullReq("/images/create?fromImage=evil.example/x&tag=1"), false, RuleAllowlist, `add "evil.example"`},
		{"alias folded", p, pullReq("/images/create?fromImage=index.docker.io/library/alpine"), true, RuleAllowlist, ""},
		{"upper-case host", p, pullReq("/images/create?fromImage=GHCR.IO/myorg/app"), true, RuleAllowlist, ""},
		{"wildcard one label only", p, pullReq("/images/create?fromImage=a.b.azurecr.io/x"), false, RuleAllowlist, "not in the allowlist"},
		{"tag param replaces tag", p, pullReq("/images/create?fromImage=ghcr.io/myorg/app:v1&tag=v2"), true, RuleAllowlist, ""},
		{"tag and digest in the name", p, pullReq("/images/create?fromImage=ghcr.io/myorg/app:v1@sha256:" + strings.Repeat("b", 64)), true, RuleAllowlist, ""},
		{"short Docker Hub name in create", p, createReq(`{"Image":"alpine"}`), true, RuleAllowlist, "docker.io"},
		{"digest in tag param", p, pullReq("/images/create?fromImage=evil.example/x&tag=sha256:" + strings.Repeat("a", 64)), false, RuleAllowlist, ""},
		{"bad tag", p, pullReq("/images/create?fromImage=ghcr.io/myorg/app&tag=-bad"), false, RuleAllowlist, "invalid tag"},
		{"unparseable reference", p, pullReq("/images/create?fromImage=ghcr.io/myorg/App"), false, RuleAllowlist, "invalid image reference"},
		{"user-info", p, pullReq("/images/create?fromImage=user@ghcr.io/myorg/app"), false, RuleAllowlist, "names credentials"},
		{"user-info with a password", p, createReq(`{"Image":"bob:s3cret-pw@ghcr.io/myorg/app"}`), false, RuleAllowlist, "names credentials"},
		{"user-info without a path", p, pullReq("/images/create?fromImage=bob:s3cret-pw@ghcr.io"), false, RuleAllowlist, "names credentials"},
		{"digest without a path", p, pullReq("/images/create?fromImage=alpine@sha256:" + strings.Repeat("a", 64)), true, RuleAllowlist, ""},
		{"fromImage twice", p, pullReq("/images/create?fromImage=docker.io/alpine&fromImage=evil.example/x"), false, RuleRequest, "2 times"},
		{"tag twice", p, pullReq("/images/create?fromImage=alpine&tag=1&tag=2"), false, RuleRequest, "2 times"},
		{"semicolon query", p, pullReq("/images/create?fromImage=evil.example/x;tag=1"), false, RuleRequest, "does not parse"},
		{"absolute-form URI", p, pullReq("http://docker/v1.41/images/create?fromImage=evil.example/x"), false, RuleAllowlist, ""},
		{"encoded path", p, pullReq("/v1.41/images%2Fcreate?fromImage=evil.example/x"), false, RuleAllowlist, ""},
		{"unclean path", p, pullReq("/v1.41//images/./create?fromImage=evil.example/x"), false, RuleAllowlist, ""},
		{"lower-case method", p, &Request{RequestMethod: "post", RequestURI: "/images/create?fromImage=evil.example/x", RequestHeaders: map[string]string{"Content-Length": "0"}}, false, RuleAllowlist, ""},
		{"no body headers at all", p, &Request{RequestMethod: "POST", RequestURI: "/images/create?fromImage=alpine"}, true, RuleAllowlist, ""},
		{"body hidden: length without content", p, &Request{RequestMethod: "POST", RequestURI: "/images/create?fromImage=alpine", RequestHeaders: map[string]string{"Content-Length": "40", "Content-Type": "text/plain"}}, false, RuleRequest, "body"},
		{"form body", p, &Request{RequestMethod: "POST", RequestURI: "/images/create?fromImage=alpine", RequestHeaders: map[string]string{"content-type": "Application/X-WWW-Form-Urlencoded; charset=utf-8", "Content-Length": "0"}}, false, RuleRequest, "form"},
		{"empty fromImage is an import", p, pullReq("/images/create?fromImage=&fromSrc=-"), false, "authz.import", "authz.import: allow"},
		{"import from URL", p, pullReq("/images/create?fromSrc=http://127.0.0.1:9/x.tar"), false, "authz.import", ""},
		{"malformed URI", p, &Request{RequestMethod: "POST", RequestURI: "%zz"}, false, RuleRequest, "does not parse"},
		{"no method", p, &Request{RequestURI: "/images/create"}, false, RuleRequest, "method"},
		{"create by name", p, createReq(`{"Image":"ghcr.io/myorg/app:v1"}`), true, RuleAllowlist, ""},
		{"create denied", p, createReq(`{"Image":"evil.example/x"}`), false, RuleAllowlist, "evil.example"},
		{"create keys differing in case", p, createReq(`{"Image":"alpine","image":"evil.example/x"}`), false, RuleRequest, `2 "Image" keys`},
		{"create bad JSON", p, createReq(`{"Image":"alpine"`), false, RuleRequest, "not a valid container config"},
		{"create trailing data", p, createReq(`{"Image":"alpine"} {"Image":"evil.example/x"}`), false, RuleRequest, ""},
		{"create not an object", p, createReq(`["alpine"]`), false, RuleRequest, "not a valid container config"},
		{"create image not a string", p, createReq(`{"Image":1}`), false, RuleRequest, ""},
		{"create no image", p, createReq(`{"Cmd":["true"]}`), false, RuleRequest, "names no image"},
		{"create by full ID", p, createReq(`{"Image":"` + strings.Repeat("c", 64) + `"}`), false, "authz.local_images", "image ID"},
		{"create by digest ID", p, createReq(`{"Image":"sha256:` + strings.Repeat("c", 64) + `"}`), false, "authz.local_images", ""},
		{"create by digest reference", p, createReq(`{"Image":"ghcr.io/myorg/app@sha256:` + strings.Repeat("c", 64) + `"}`), true, RuleAllowlist, ""},
		{"create without body", p, &Request{RequestMethod: "POST", RequestURI: "/containers/create", RequestHeaders: map[string]string{"Content-Length": "2000000"}}, false, RuleRequest, "1 MiB"},
		{"service create", p, &Request{RequestMethod: "POST", RequestURI: "/v1.41/services/create", RequestBody: []byte(`{"TaskTemplate":{"ContainerSpec":{"Image":"evil.example/x"}}}`)}, false, RuleAllowlist, ""},
		{"service without container", p, &Request{RequestMethod: "POST", RequestURI: "/v1.41/services/abc/update", RequestBody: []byte(`{"TaskTemplate":{}}`)}, false, RuleRequest, "no container image"},
		{"plugin upgrade", p, pullReq("/v1.41/plugins/x/upgrade?remote=evil.example/p"), false, RuleAllowlist, ""},
		{"plugin pull without remote", p, pullReq("/v1.41/plugins/pull?name=x"), false, RuleRequest, "remote"},
		{"distribution", p, &Request{RequestMethod: "GET", RequestURI: "/v1.41/distribution/evil.example/x:1/json"}, false, RuleAllowlist, ""},
		{"BuildKit gRPC", p, &Request{RequestMethod: "POST", RequestURI: "/grpc"}, false, "authz.build", "authz.build: allow"},
		{"other routes pass", p, &Request{RequestMethod: "GET", RequestURI: "/v1.41/containers/json?all=1"}, true, "", ""},
		{"image inspect named like create", p, &Request{RequestMethod: "GET", RequestURI: "/v1.41/images/create/json"}, true, "", ""},

		{"through the proxy", p, pullReq("/images/create?fromImage=127.0.0.1:5000/ghcr.io/myorg/app&tag=v1"), true, RuleAllowlist, ""},
		{"through the proxy, denied upstream", p, pullReq("/images/create?fromImage=127.0.0.1:5000/evil.example/x&tag=v1"), false, RuleAllowlist, "evil.example"},
		{"proxy host only", p, pullReq("/images/create?fromImage=127.0.0.1:5000/ghcr.io"), false, RuleAllowlist, "no repository"},
		{"public: direct pull refused", pub, pullReq("/images/create?fromImage=ghcr.io/myorg/app&tag=v1"), false, RulePublic, "127.0.0.1:5000/ghcr.io/myorg/app:v1"},
		{"public: direct and not allowed", pub, pullReq("/images/create?fromImage=evil.example/x"), false, RuleAllowlist, ""},
		{"public: through the proxy", pub, pullReq("/images/create?fromImage=127.0.0.1:5000/ghcr.io/myorg/app&tag=v1"), true, RuleAllowlist, ""},
		{"public: Docker Hub mirror path", pub, pullReq("/images/create?fromImage=127.0.0.1:5000/library/alpine"), true, RuleAllowlist, ""},
		{"public: proxy by another name", pub, pullReq("/images/create?fromImage=localhost:5000/ghcr.io/myorg/app"), false, RuleAllowlist, "localhost:5000"},
		{"public: create direct", pub, createReq(`{"Image":"alpine"}`), false, RulePublic, ""},
		{"public: login", pub, &Request{RequestMethod: "POST", RequestURI: "/v1.41/auth"}, false, "authz.login", "authz.login: allow"},
	}
	for _, c := range cases {
		d := c.p.Authorize(c.req)
		if strings.Contains(d.Message(), "s3cret") {
			t.Errorf("%s: the message repeats a password: %s", c.name, d.Message())
		}
		if d.Allowed != c.allow || d.Rule != c.rule || !strings.Contains(d.Reason+d.Message(), c.inMsg) {
			t.Errorf("%s: got allowed=%v rule=%q reason=%q; want allowed=%v rule=%q, reason containing %q", c.name, d.Allowed, d.Rule, d.Reason, c.allow, c.rule, c.inMsg)
		}
	}
}

func TestGatesAllow(t *testing.T) {
	p := mustPolicy(t, Options{Build: true, Load: true, Import: true, Login: true, LocalImages: true})
	for _, r := range []*Request{
		{RequestMethod: "POST", RequestURI: "/build"},
		{RequestMethod: "POST", RequestURI: "/session"},
		{RequestMethod: "POST", RequestURI: "/images/load"},
		{RequestMethod: "POST", RequestURI: "/images/create?fromSrc=-", RequestHeaders: map[string]string{"Content-Type": "text/plain"}},
		{RequestMethod: "POST", RequestURI: "/auth"},
		{RequestMethod: "POST", RequestURI: "/images/x/tag?repo=y"},
		createReq(`{"Image":"sha256:` + strings.Repeat("c", 64) + `"}`),
	} {
		if d := p.Authorize(r); !d.Allowed {
			t.Errorf("%s %s with every gate open: refused: %s", r.RequestMethod, r.RequestURI, d.Message())
		}
	}
	// An open import gate still refuses a form body, which could carry
	// fromImage.
	if d := p.Authorize(&Request{RequestMethod: "POST", RequestURI: "/images/create?fromSrc=-", RequestHeaders: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}); d.Allowed {
		t.Error("import with a form body allowed")
	}
}

func TestMessageNamesRuleAndFix(t *testing.T) {
	p := mustPolicy(t, Options{}, "docker.io")
	d := p.Authorize(pullReq("/v1.41/images/create?fromImage=ghcr.io/org/app&tag=v1"))
	want := `image pull of ghcr.io/org/app:v1 refused by rule "allowlist": registry host ghcr.io is not in the allowlist; add "ghcr.io" (or a pattern covering it) to allowlist: in the tollgate config`
	if d.Message() != want {
		t.Errorf("message\n%s\nwant\n%s", d.Message(), want)
	}
}
