package authz

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/allowlist"
)

// The fixtures in testdata/engine/ENGINE are AuthZReq bodies captured
// from a real dockerd, one directory per engine version, by
// integration.TestAuthzEngineRequests with TOLLGATE_AUTHZ_CAPTURE=DIR
// (docs/authz.md says how to capture from another engine). The registry
// they name is 127.0.0.1:5999.
//
//   - 20.10.24: Debian's docker.io (API 1.41), driven by the docker CLI
//     28.2.2 and by raw API calls (the raw-* ones sent with curl 7.88.1,
//     which sends a bodiless POST with neither Content-Length nor
//     Content-Type; pull-no-login and raw-create-chunked come from a later
//     capture, whose raw calls are sent from Go).
//   - moby-v2.0.0-beta.24: dockerd built from the module
//     github.com/moby/moby/v2@v2.0.0-beta.24 (Docker 29.8's daemon
//     sources, API 1.56; the CLI 28.2.2 negotiated 1.50) on Debian's
//     containerd 1.6.20, driven by the same CLI and the same raw calls.

// engineDirs returns the fixture directories, one per engine version.
func engineDirs(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("testdata", "engine"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no engine fixtures under testdata/engine")
	}
	return dirs
}

// fixtureNames returns the names of an engine's fixtures, without .json.
func fixtureNames(t testing.TB, engine string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("testdata", "engine", engine))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, name)
		}
	}
	return names
}

func loadFixture(t testing.TB, engine, name string) *Request {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "engine", engine, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s/%s: %v", engine, name, err)
	}
	return &r
}

func mustPolicy(t testing.TB, o Options, patterns ...string) *Policy {
	t.Helper()
	al, err := allowlist.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	o.Allowlist = al
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type want struct {
	allow bool
	rule  string
	ref   string // substring of Decision.Reference, "" = not checked
}

func TestEngineFixtures(t *testing.T) {
	// private: the registry and Docker Hub are allowed, but only team/app
	// on the registry; the gates are at their defaults (login allowed in
	// private mode).
	private := mustPolicy(t, Options{Proxy: "127.0.0.1:5000", Login: true}, "127.0.0.1:5999/team/app", "docker.io")
	// public: the fixtures' registry plays the tollgate proxy; Docker Hub
	// is allowed upstream, but only through the proxy.
	public := mustPolicy(t, Options{Public: true, Proxy: "127.0.0.1:5999"}, "docker.io")
	allowOther := want{true, "", ""}
	cases := []struct {
		fixture         string
		private, public want
	}{
		{"ping", allowOther, allowOther},
		{"pull-tag", want{true, RuleAllowlist, "127.0.0.1:5999/team/app:v1"}, want{true, RuleAllowlist, "docker.io/team/app:v1 through the tollgate proxy"}},
		// The same pull with no login in the client's config: the plugin
		// sees the same request.
		{"pull-no-login", want{true, RuleAllowlist, "127.0.0.1:5999/team/app:v1"}, want{true, RuleAllowlist, "docker.io/team/app:v1 through the tollgate proxy"}},
		{"pull-digest", want{true, RuleAllowlist, "127.0.0.1:5999/team/app@sha256:dddd"}, want{true, RuleAllowlist, "docker.io/team/app@sha256:dddd"}},
		{"pull-all-tags", want{true, RuleAllowlist, "127.0.0.1:5999/team/app"}, want{true, RuleAllowlist, "docker.io/team/app"}},
		{"pull-latest-missing", want{true, RuleAllowlist, "team/app:latest"}, want{true, RuleAllowlist, "docker.io/team/app:latest"}},
		{"pull-platform", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		{"pull-docker-hub-short", want{true, RuleAllowlist, "docker.io/library/alpine:3.20"}, want{false, RulePublic, "docker.io/library/alpine:3.20"}},
		{"raw-pull-unversioned", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		{"raw-pull-tag-in-name", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		{"raw-pull-encoded", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		{"raw-pull-digest-in-tag", want{true, RuleAllowlist, "team/app@sha256:dddd"}, want{true, RuleAllowlist, ""}},
		// The daemon reads fromImage from a form body the plugin never sees.
		{"raw-pull-form-body", want{false, RuleRequest, ""}, want{false, RuleRequest, ""}},
		{"raw-pull-chunked", want{false, RuleRequest, ""}, want{false, RuleRequest, ""}},
		{"create-name", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		{"create-id", want{false, "authz.local_images", "sha256:cccc"}, want{false, "authz.local_images", ""}},
		// Sent chunked: both engines passed the body.
		{"raw-create-chunked", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		{"raw-create-lowercase-key", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		// A body without Content-Type is not passed; 20.10.24 and 29 refuse
		// such a create themselves (400), the plugin refuses it all the same.
		{"raw-create-no-content-type", want{false, RuleRequest, ""}, want{false, RuleRequest, ""}},
		{"run-missing-containers-create", want{false, RuleAllowlist, "team/missing:v1"}, want{true, RuleAllowlist, "docker.io/team/missing:v1"}},
		{"run-missing-images-create", want{false, RuleAllowlist, "team/missing:v1"}, want{true, RuleAllowlist, ""}},
		{"run-pull-always-images-create", want{true, RuleAllowlist, ""}, want{true, RuleAllowlist, ""}},
		{"run-pull-always-containers-create", want{true, RuleAllowlist, ""}, want{true, RuleAllowlist, ""}},
		{"run-pull-always-containers-attach", allowOther, allowOther},
		{"run-pull-always-containers-start", allowOther, allowOther},
		{"run-pull-always-containers-wait", allowOther, allowOther},
		{"raw-distribution", want{true, RuleAllowlist, "team/app:v1"}, want{true, RuleAllowlist, ""}},
		{"plugin-install-plugins-privileges", want{false, RuleAllowlist, "team/plugin:v1"}, want{true, RuleAllowlist, "docker.io/team/plugin:v1"}},
		{"plugin-install-plugins-pull", want{false, RuleAllowlist, "team/plugin:v1"}, want{true, RuleAllowlist, ""}},
		{"raw-plugin-pull", want{false, RuleAllowlist, "team/plugin:v1"}, want{true, RuleAllowlist, ""}},
		{"build-classic", want{false, "authz.build", ""}, want{false, "authz.build", ""}},
		{"raw-build-remote", want{false, "authz.build", ""}, want{false, "authz.build", ""}},
		{"raw-session", want{false, "authz.build", ""}, want{false, "authz.build", ""}},
		{"load", want{false, "authz.load", ""}, want{false, "authz.load", ""}},
		{"import", want{false, "authz.import", ""}, want{false, "authz.import", ""}},
		{"login", want{true, "authz.login", ""}, want{false, "authz.login", ""}},
		{"tag", want{false, "authz.local_images", ""}, want{false, "authz.local_images", ""}},
		{"image-inspect", allowOther, allowOther},
		{"save", allowOther, allowOther},
		{"search", allowOther, allowOther},
	}
	for _, engine := range engineDirs(t) {
		t.Run(engine, func(t *testing.T) {
			have := map[string]bool{}
			for _, name := range fixtureNames(t, engine) {
				have[name] = true
			}
			for _, c := range cases {
				if !have[c.fixture] {
					t.Errorf("%s has no fixture %s.json: capture it (docs/authz.md)", engine, c.fixture)
					continue
				}
				delete(have, c.fixture)
				req := loadFixture(t, engine, c.fixture)
				for _, m := range []struct {
					name string
					p    *Policy
					w    want
				}{{"private", private, c.private}, {"public", public, c.public}} {
					d := m.p.Authorize(req)
					if d.Allowed != m.w.allow || d.Rule != m.w.rule || !strings.Contains(d.Reference, m.w.ref) {
						t.Errorf("%s (%s %s), %s mode: got allowed=%v rule=%q reference=%q (%s); want allowed=%v rule=%q reference containing %q",
							c.fixture, req.RequestMethod, req.RequestURI, m.name, d.Allowed, d.Rule, d.Reference, d.Reason, m.w.allow, m.w.rule, m.w.ref)
					}
					if !d.Allowed {
						msg := d.Message()
						if !strings.Contains(msg, d.Rule) || d.Reason == "" {
							t.Errorf("%s, %s mode: message %q does not name the rule and the reason", c.fixture, m.name, msg)
						}
					}
				}
			}
			for name := range have {
				t.Errorf("fixture %s/%s.json has no expected decision in this table", engine, name)
			}
		})
	}
}

// BenchmarkAuthorize is the plugin's own time per request, in process: a
// pull (decoded, combined, checked against a 12-pattern allowlist) and a
// container create with the CLI's 1.7 KB body.
func BenchmarkAuthorize(b *testing.B) {
	p := mustPolicy(b, Options{Proxy: "127.0.0.1:5000"}, "*.azurecr.io", "<account>.dkr.ecr.<region>.amazonaws.com", "docker.io",
		"*-docker.pkg.dev", "gcr.io", "*.gcr.io", "ghcr.io", "public.ecr.aws", "quay.io", "registry.gitlab.com", "registry.hub.docker.com", "127.0.0.1:5999")
	for _, f := range []string{"pull-tag", "create-name", "image-inspect"} {
		req := loadFixture(b, "20.10.24", f)
		b.Run(f, func(b *testing.B) {
			for b.Loop() {
				if d := p.Authorize(req); !d.Allowed {
					b.Fatal(d.Message())
				}
			}
		})
	}
}
