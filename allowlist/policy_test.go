package allowlist

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/spacelift-io/tollgate/config"
)

func TestDefaultIsEmbeddedConfig(t *testing.T) {
	got := Default().Patterns()
	want := config.Default().Allowlist
	if !slices.Equal(got, want) {
		t.Fatalf("Default() patterns = %q, embedded config allowlist = %q", got, want)
	}
	// The brief's registries must all be there.
	for _, ref := range []string{
		"myreg.azurecr.io/x", "123456789012.dkr.ecr.sa-east-1.amazonaws.com/x", "alpine",
		"us-central1-docker.pkg.dev/p/r/i", "gcr.io/p/i", "asia.gcr.io/p/i", "ghcr.io/o/i",
		"public.ecr.aws/o/i", "quay.io/o/i", "registry.gitlab.com/g/p", "registry.hub.docker.com/o/i",
	} {
		if v := Default().Check(ref); !v.Allowed {
			t.Errorf("default policy denies %s: %s", ref, v.Reason)
		}
	}
}

func TestNewRejectsBadPatterns(t *testing.T) {
	_, err := New([]string{"ghcr.io", "*.io", "quay.io", "https://x.example.com"})
	if err == nil {
		t.Fatal("New accepted *.io and a URL")
	}
	if !errors.Is(err, ErrInvalidPattern) {
		t.Errorf("error %v does not wrap ErrInvalidPattern", err)
	}
	for _, want := range []string{`entry 2`, `"*.io"`, `entry 4`, `"https://x.example.com"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestEmptyPolicyDeniesWithReason(t *testing.T) {
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := p.Check("alpine")
	if v.Allowed || !strings.Contains(v.Reason, "allowlist is empty") {
		t.Fatalf("empty policy: %+v", v)
	}
	var nilPolicy *Policy
	if v := nilPolicy.CheckRepository("docker.io", "library/alpine"); v.Allowed || !strings.Contains(v.Reason, "allowlist is empty") {
		t.Fatalf("nil policy: %+v", v)
	}
}

func TestReasons(t *testing.T) {
	p, err := New(customPatterns)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ref  string
		want []string
	}{
		{"ghcr.io/myorg/x", []string{`allowed by allowlist pattern "ghcr.io/myorg/*"`}},
		{"evil.example/x", []string{"registry host evil.example is not in the allowlist", `add "evil.example"`, "allowlist:"}},
		{"ghcr.io/other/x", []string{"repository other/x on ghcr.io is not allowed", `"ghcr.io/myorg/*"`, `add "ghcr.io/other/x"`}},
		{"127.0.0.1:5002/x", []string{"127.0.0.1:5002", `pattern "127.0.0.1:5001" names another port`}},
		{"ghcr.io/Org/x", []string{"invalid image reference", "must be lowercase"}},
		{"user@ghcr.io/x", []string{"invalid image reference", "invalid reference format"}},
		{strings.Repeat("a", 64) + ".example.com/x", []string{"invalid image reference", "label longer than 63"}},
		{"127.1/x", []string{"invalid image reference", "dotted-quad"}},
	}
	for _, c := range cases {
		v := p.Check(c.ref)
		for _, w := range c.want {
			if !strings.Contains(v.Reason, w) {
				t.Errorf("Check(%q).Reason = %q, want it to contain %q", c.ref, v.Reason, w)
			}
		}
	}
	// A reason is one printable line, whatever the reference holds.
	for _, ref := range []string{"ghcr.io/Org\nallow docker.io/library/alpine", "ghcr.io/A\x1b[31m", "ghcr.io/\xff\xfeA", "A\u202e"} {
		v := p.Check(ref)
		if strings.ContainsFunc(v.Reason, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) {
			t.Errorf("Check(%q).Reason = %q contains unprintable characters", ref, v.Reason)
		}
	}
	// A huge hostile reference is not echoed whole.
	v := p.Check(strings.Repeat("A", 100000))
	if len(v.Reason) > 1000 {
		t.Errorf("reason for a 100 kB reference is %d bytes long", len(v.Reason))
	}
}

func TestCheckRepository(t *testing.T) {
	p, err := New(customPatterns)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host, repo string
		allowed    bool
		wantRef    string
	}{
		{"ghcr.io", "myorg/x", true, "ghcr.io/myorg/x"},
		{"ghcr.io.", "myorg/x", true, "ghcr.io/myorg/x"},
		{"GHCR.IO:443", "myorg/x/y", true, "ghcr.io/myorg/x/y"},
		{"ghcr.io:0443", "myorg/x", true, "ghcr.io/myorg/x"},
		{"registry-1.docker.io", "alpine", true, "docker.io/library/alpine"},
		{"index.docker.io", "library/alpine", true, "docker.io/library/alpine"},
		{"docker.io", "bitnami/redis", true, "docker.io/bitnami/redis"},
		{"127.0.0.1:5001", "x", true, "127.0.0.1:5001/x"},
		{"[::1]:5000", "x", true, "[::1]:5000/x"},
		{"[0::1]:5000", "x", true, "[::1]:5000/x"},
		{"a.corp.example.com.", "x", true, "a.corp.example.com/x"},
		{"ghcr.io", "myorg", false, ""},
		{"ghcr.io", "myorgevil/x", false, ""},
		{"ghcr.io", "MyOrg/x", false, ""},
		{"ghcr.io", "", false, ""},
		{"ghcr.io", "myorg//x", false, ""},
		{"ghcr.io", "myorg/x/", false, ""},
		{"ghcr.io", "/myorg/x", false, ""},
		{"ghcr.io", "../myorg/x", false, ""},
		{"ghcr.io", "myorg/../../x", false, ""},
		{"ghcr.io", "myorg/x:tag", false, ""},
		{"ghcr.io", "myorg/x@sha256:" + hex64, false, ""},
		{"ghcr.io", "myorg/" + strings.Repeat("a", 250), false, ""},
		{"registry-1.docker.io", strings.Repeat("a", 250), false, ""}, // 258 with library/
		{"", "myorg/x", false, ""},
		{"ghcr.io/evil", "myorg/x", false, ""},
		{"user@ghcr.io", "myorg/x", false, ""},
		{"https://ghcr.io", "myorg/x", false, ""},
		{"ghcr.io..", "myorg/x", false, ""},
		{".ghcr.io", "myorg/x", false, ""},
		{"ghcr.io:", "myorg/x", false, ""},
		{"ghcr.io:443:443", "myorg/x", false, ""},
		{"ghcr.io\x00", "myorg/x", false, ""},
		{"ghсr.io", "myorg/x", false, ""},
		{"ghcr.io:65536", "myorg/x", false, ""},
		{"[::1", "x", false, ""},
		{"[::1]x:5000", "x", false, ""},
		{"[fe80::1%eth0]:5000", "x", false, ""},
		{"[::ffff:127.0.0.1]:5001", "x", false, ""},
		{"::1", "x", false, ""},
		{"127.0.0.1:5001.", "x", false, ""},
		{"ghcr_io", "myorg/x", false, ""},
	}
	for _, c := range cases {
		v := p.CheckRepository(c.host, c.repo)
		if v.Allowed != c.allowed {
			t.Errorf("CheckRepository(%q, %q).Allowed = %v, want %v (%s)", c.host, c.repo, v.Allowed, c.allowed, v.Reason)
			continue
		}
		if c.wantRef != "" && v.Reference != c.wantRef {
			t.Errorf("CheckRepository(%q, %q).Reference = %q, want %q", c.host, c.repo, v.Reference, c.wantRef)
		}
		if v.Reason == "" {
			t.Errorf("CheckRepository(%q, %q): empty reason", c.host, c.repo)
		}
	}
}

// Check and CheckRepository must agree wherever both apply.
func TestCheckAgreesWithCheckRepository(t *testing.T) {
	p, err := New(customPatterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(append([]refCase(nil), defaultCorpus...), customCorpus...) {
		v := p.Check(c.ref)
		if v.Host == "" {
			continue
		}
		r := p.CheckRepository(v.Host, v.Repository)
		if r.Allowed != v.Allowed || r.Host != v.Host || r.Repository != v.Repository || r.Pattern != v.Pattern {
			t.Errorf("Check(%q) = %+v but CheckRepository = %+v", c.ref, v, r)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	good := map[string]string{
		"ghcr.io":                 "ghcr.io",
		"GHCR.IO":                 "ghcr.io",
		"ghcr.io.":                "ghcr.io",
		"ghcr.io:443":             "ghcr.io",
		"ghcr.io.:443":            "ghcr.io",
		"ghcr.io:0443":            "ghcr.io",
		"ghcr.io:5000":            "ghcr.io:5000",
		"ghcr.io:05000":           "ghcr.io:5000",
		"docker.io":               "docker.io",
		"index.docker.io":         "docker.io",
		"registry-1.docker.io":    "docker.io",
		"registry.hub.docker.com": "docker.io",
		"Registry.Hub.Docker.Com": "docker.io",
		"index.docker.io:443":     "docker.io",
		"index.docker.io:5000":    "index.docker.io:5000",
		"localhost":               "localhost",
		"localhost:5000":          "localhost:5000",
		"127.0.0.1:5000":          "127.0.0.1:5000",
		"[::1]:5000":              "[::1]:5000",
		"[0:0::1]":                "[::1]",
		"[2001:DB8::1]":           "[2001:db8::1]",
		"xn--bcher-kva.example":   "xn--bcher-kva.example",
	}
	for in, want := range good {
		got, err := CanonicalHost(in)
		if err != nil || got != want {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", ".", "..", "ghcr.io..", ".ghcr.io", "ghcr..io", "ghcr.io:", "ghcr.io:0", "ghcr.io:65536",
		"ghcr.io:123456", "ghcr.io:+443", "ghcr.io:4 43", "ghcr.io:x", "a:1:2", "::1", "[::1", "[::1]x",
		"[::1]:", "[fe80::1%eth0]", "[127.0.0.1]", "[::ffff:7f00:1]", "user@ghcr.io", "ghcr.io/x",
		"https://ghcr.io", "ghcr.io?x", "ghcr.io#x", "ghcr io", " ghcr.io", "ghcr.io\n", "ghсr.io",
		"bücher.example", "-ghcr.io", "ghcr-.io", "gh_cr.io", "*.ghcr.io", strings.Repeat("a", 64) + ".io",
		strings.Repeat("a.", 127) + "io", "127.1", "1.2.3.4.5", "0x7f.0.0.1", "127.000.000.001", "256.0.0.1",
	}
	for _, in := range bad {
		got, err := CanonicalHost(in)
		if err == nil {
			t.Errorf("CanonicalHost(%q) = %q, want an error", in, got)
		} else if !errors.Is(err, ErrInvalidHost) {
			t.Errorf("CanonicalHost(%q) error %v does not wrap ErrInvalidHost", in, err)
		}
	}
}
