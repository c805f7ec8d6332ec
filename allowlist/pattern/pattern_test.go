package pattern

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileRejects(t *testing.T) {
	bad := map[string]string{
		"":                              "empty pattern",
		"*":                             "too broad",
		"*.io":                          "too broad",
		"*.*":                           "too broad",
		"*.*.com":                       "too broad",
		"*.example.*":                   "too broad",
		"a*.io":                         "too broad",
		"<account>.io":                  "too broad",
		"ghcr.io/":                      "empty repository",
		"ghcr.io//x":                    "empty repository path component",
		"ghcr.io/x/":                    "empty repository path component",
		"ghcr.io/Org/*":                 "lower case",
		"ghcr.io/*/x":                   "whole last component",
		"ghcr.io/my*/x":                 "whole last component",
		"ghcr.io/myorg*":                "whole last component",
		"ghcr.io/x:tag":                 "not a valid repository name component",
		"ghcr.io/x/..":                  "not a valid repository name component",
		"https://ghcr.io":               "without a scheme",
		"ghcr.io:abc":                   "not a number",
		"ghcr.io:0":                     "not a number",
		"ghcr.io:70000":                 "not a number",
		"ghcr.io:":                      "empty port",
		"ghcr.io:5000:1":                "more than one ':'",
		"*.example.com:*":               "not a number",
		"a**b.example.com":              "at most one '*'",
		"<acct>.example.com":            "placeholders",
		"<account.example.com":          "placeholders",
		"10.0.0.*":                      "too broad",
		"*.0.0.1":                       "IP addresses",
		"[::*]:5000":                    "IP addresses",
		"ghcr .io":                      "space",
		"ghcr.io\n":                     "control",
		"ghсr.io":                       "punycode",
		"user@ghcr.io":                  "user-info",
		"ghcr.io@sha256:abc":            "user-info",
		"ghcr.io/x?y":                   "'?'",
		"-ghcr.io":                      "starts or ends with '-'",
		"*-.example.com":                "starts or ends with '-'",
		"gh_cr.io":                      "only letters",
		strings.Repeat("a", 64) + ".io": "longer than 63",
		"127.1":                         "dotted-quad",
		"[::1":                          "unterminated",
		"ghcr..io":                      "empty label",
		".ghcr.io":                      "empty label",
		"ghcr.io/" + strings.Repeat("a/", 129) + "*": "longer than 255",
	}
	for in, want := range bad {
		_, err := Compile(in)
		if err == nil {
			t.Errorf("Compile(%q) succeeded, want error containing %q", in, want)
			continue
		}
		if !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("Compile(%q): %v does not wrap ErrInvalidPattern", in, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Compile(%q) = %q, want it to contain %q", in, err, want)
		}
	}
}

func TestCompileCanonicalises(t *testing.T) {
	cases := []struct{ in, host, repo string }{
		{"ghcr.io", "ghcr.io", ""},
		{"GHCR.IO", "ghcr.io", ""},
		{"ghcr.io.", "ghcr.io", ""},
		{"ghcr.io:443", "ghcr.io", ""},
		{"ghcr.io:05000", "ghcr.io:5000", ""},
		{"index.docker.io", "docker.io", ""},
		{"registry.hub.docker.com", "docker.io", ""},
		{"docker.io/alpine", "docker.io", "library/alpine"},
		{"registry-1.docker.io/alpine", "docker.io", "library/alpine"},
		{"docker.io/alpine/*", "docker.io", "alpine/*"},
		{"docker.io/*", "docker.io", "*"},
		{"docker.io:5000/alpine", "docker.io:5000", "alpine"},
		{"ghcr.io/myorg", "ghcr.io", "myorg"},
		{"ghcr.io/myorg/*", "ghcr.io", "myorg/*"},
		{"*.AzureCR.io", "*.azurecr.io", ""},
		{"*.azurecr.io.:443", "*.azurecr.io", ""},
		{"*.corp.example.com:5000/team/*", "*.corp.example.com:5000", "team/*"},
		{"<account>.dkr.ecr.<region>.amazonaws.com", "<account>.dkr.ecr.<region>.amazonaws.com", ""},
		{"[0::1]:5000", "[::1]:5000", ""},
		{"127.0.0.1:5001", "127.0.0.1:5001", ""},
	}
	for _, c := range cases {
		p, err := Compile(c.in)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.in, err)
			continue
		}
		if p.HostPattern() != c.host || p.Repository() != c.repo || p.String() != c.in {
			t.Errorf("Compile(%q) = host %q repo %q raw %q; want %q %q", c.in, p.HostPattern(), p.Repository(), p.String(), c.host, c.repo)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern string
		yes, no []string // host/repo pairs written "host repo"
	}{
		{"*.azurecr.io", []string{"a.azurecr.io x", "xn--bcher-kva.azurecr.io x/y"},
			[]string{"azurecr.io x", "a.b.azurecr.io x", "a.azurecr.io:5000 x", "aazurecr.io x", "a.azurecr.io.evil x"}},
		{"*-docker.pkg.dev", []string{"us-central1-docker.pkg.dev p/r/i", "us-docker.pkg.dev p/r/i"},
			[]string{"docker.pkg.dev x", "us.docker.pkg.dev x", "us-dockerx.pkg.dev x", "us-docker.pkg.dev.evil x", "a.us-docker.pkg.dev x"}},
		{"us-*-docker.pkg.dev", []string{"us-central1-docker.pkg.dev x"},
			[]string{"us--docker.pkg.dev x", "eu-central1-docker.pkg.dev x"}},
		{"<account>.dkr.ecr.<region>.amazonaws.com", []string{"123456789012.dkr.ecr.us-east-1.amazonaws.com x", "000000000000.dkr.ecr.us-gov-west-1.amazonaws.com x", "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com x"},
			[]string{"12345678901.dkr.ecr.us-east-1.amazonaws.com x", "1234567890123.dkr.ecr.us-east-1.amazonaws.com x", "12345678901a.dkr.ecr.us-east-1.amazonaws.com x",
				"123456789012.dkr.ecr.useast1.amazonaws.com x", "123456789012.dkr.ecr.us-east.amazonaws.com x", "123456789012.dkr.ecr.us-east-100.amazonaws.com x",
				"123456789012.dkr.ecr.us-east-1a.amazonaws.com x", "123456789012.dkr.ecr.1-east-1.amazonaws.com x", "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn x"}},
		{"ghcr.io/myorg/*", []string{"ghcr.io myorg/x", "ghcr.io myorg/x/y", "ghcr.io:443 myorg/x"},
			[]string{"ghcr.io myorg", "ghcr.io myorgevil/x", "ghcr.io my/org", "ghcr.io:5000 myorg/x", "evil.ghcr.io myorg/x"}},
		{"ghcr.io/myorg", []string{"ghcr.io myorg"}, []string{"ghcr.io myorg/x", "ghcr.io myorgx"}},
		{"ghcr.io/*", []string{"ghcr.io x", "ghcr.io x/y"}, []string{"ghcr.io:5000 x"}},
		{"127.0.0.1:5001", []string{"127.0.0.1:5001 x", "127.0.0.1:05001 x"}, []string{"127.0.0.1 x", "127.0.0.1:5002 x", "127.0.0.10:5001 x"}},
		{"*.0.0.example.com", []string{"1.0.0.example.com x"}, []string{"127.0.0.1 x"}},
		{"*.*.example.com", []string{"a.b.example.com x"}, []string{"a.example.com x", "a.b.c.example.com x"}},
		{"docker.io", []string{"index.docker.io library/alpine", "registry-1.docker.io x/y"}, []string{"docker.io:5000 x", "evil.docker.io x"}},
		{"*.docker.io", []string{"evil.docker.io x"}, []string{"index.docker.io x", "registry-1.docker.io x", "docker.io x"}},
		{"[::1]:5000", []string{"[::1]:5000 x", "[0:0::1]:5000 x"}, []string{"[::1] x", "[::2]:5000 x", "127.0.0.1:5000 x"}},
	}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		check := func(pair string, want bool) {
			host, repo, _ := strings.Cut(pair, " ")
			h, err := ParseHost(host)
			if err != nil {
				if want {
					t.Errorf("ParseHost(%q): %v", host, err)
				}
				return
			}
			if got := p.MatchHost(h) && p.MatchRepository(repo); got != want {
				t.Errorf("pattern %q on %q: match = %v, want %v", c.pattern, pair, got, want)
			}
		}
		for _, y := range c.yes {
			check(y, true)
		}
		for _, n := range c.no {
			check(n, false)
		}
	}
}

func TestValidRepository(t *testing.T) {
	for _, ok := range []string{"a", "library/alpine", "a/b/c", "a.b", "a_b", "a__b", "a---b", "0"} {
		if err := ValidRepository(ok); err != nil {
			t.Errorf("ValidRepository(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/", "a/", "/a", "a//b", "A", "a..b", "a.", "_a", "a___b", "a/./b", "a/../b", "a:b", "a@b", "a b", strings.Repeat("a", 256)} {
		if err := ValidRepository(bad); err == nil {
			t.Errorf("ValidRepository(%q) = nil, want an error", bad)
		}
	}
}
