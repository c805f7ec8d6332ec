package name

import (
	"errors"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/allowlist/pattern"
)

func TestNewFoldsEveryNameOfARepositoryIntoOne(t *testing.T) {
	for _, tc := range []struct{ host, path, want string }{
		{"docker.io", "alpine", "docker.io/library/alpine"},
		{"registry-1.docker.io", "alpine", "docker.io/library/alpine"},
		{"Index.Docker.IO", "library/alpine", "docker.io/library/alpine"},
		{"registry.hub.docker.com", "bitnami/redis", "docker.io/bitnami/redis"},
		{"docker.io:5000", "alpine", "docker.io:5000/alpine"}, // another registry: no library/
		{"ghcr.io:443", "org/app", "ghcr.io/org/app"},
		{"Quay.IO.", "org/app", "quay.io/org/app"},
		{"[0:0::1]:5000", "app", "[::1]:5000/app"},
		{"localhost", "app", "localhost/app"},
	} {
		r, err := New(tc.host, tc.path)
		if err != nil {
			t.Errorf("New(%q, %q): %v", tc.host, tc.path, err)
			continue
		}
		if r.String() != tc.want {
			t.Errorf("New(%q, %q) = %s, want %s", tc.host, tc.path, r, tc.want)
		}
		again, err := New(r.Host, r.Path)
		if err != nil || again != r {
			t.Errorf("New is not idempotent on %s: %s, %v", r, again, err)
		}
	}
}

func TestNewRefusesWhatIsNotAName(t *testing.T) {
	for _, tc := range []struct{ host, path, says string }{
		{"ghcr.io:0", "org/app", "port"},
		{"127.1", "app", "dotted-quad"},
		{"ghcr.io", "Org/app", "not valid"},
		{"ghcr.io", "org//app", "empty repository path component"},
		{"ghcr.io", "", "empty repository"},
		{"docker.io", strings.Repeat("a", 250), "255 characters"},
	} {
		_, err := New(tc.host, tc.path)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("New(%q, %q) = %v, want ErrInvalid saying %q", tc.host, tc.path, err, tc.says)
		}
	}
	if _, err := New("ghcr.io:0", "app"); !errors.Is(err, pattern.ErrInvalidHost) {
		t.Errorf("a bad host's error does not wrap pattern.ErrInvalidHost: %v", err)
	}
}

func TestParseReadsNamesAsDockerDoes(t *testing.T) {
	for in, want := range map[string]string{
		"alpine":                          "docker.io/library/alpine",
		"bitnami/redis":                   "docker.io/bitnami/redis",
		"registry-1.docker.io/alpine":     "docker.io/library/alpine",
		"ghcr.io/org/app":                 "ghcr.io/org/app",
		"localhost:5000/app":              "localhost:5000/app",
		"registry.gitlab.com/my.group/ap": "registry.gitlab.com/my.group/ap",
	} {
		r, err := Parse(in)
		if err != nil || r.String() != want {
			t.Errorf("Parse(%q) = %s, %v; want %s", in, r, err, want)
		}
	}
	for _, in := range []string{"alpine:3.20", "alpine@sha256:" + strings.Repeat("a", 64), "docker.io/ORG/app", "ghcr.io/", ""} {
		if _, err := Parse(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestValidTag(t *testing.T) {
	for _, tag := range []string{"latest", "3.20", "v1_rc-2", strings.Repeat("a", 128)} {
		if err := ValidTag(tag); err != nil {
			t.Errorf("ValidTag(%q): %v", tag, err)
		}
	}
	for _, tag := range []string{"", ".hidden", "-x", "a/b", "a:b", strings.Repeat("a", 129)} {
		if err := ValidTag(tag); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidTag(%q) = %v, want ErrInvalid", tag, err)
		}
	}
}
