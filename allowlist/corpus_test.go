package allowlist

import (
	"strings"
	"testing"
)

// A 64-hex-digit digest for references.
const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type refCase struct {
	ref     string
	allowed bool
	// want, when set, is the expected normalised Reference.
	want string
	// pattern, when set, is the pattern expected to allow the reference.
	pattern string
}

// defaultCorpus is an adversarial corpus against the default allowlist.
var defaultCorpus = []refCase{
	// Docker Hub, its aliases and library/ normalisation.
	{ref: "alpine", allowed: true, want: "docker.io/library/alpine:latest", pattern: "docker.io"},
	{ref: "alpine:3.20", allowed: true, want: "docker.io/library/alpine:3.20"},
	{ref: "library/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "docker.io/library/alpine:3.20", allowed: true, want: "docker.io/library/alpine:3.20"},
	{ref: "docker.io/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "index.docker.io/library/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "registry-1.docker.io/library/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "registry-1.docker.io/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "registry.hub.docker.com/library/alpine", allowed: true, want: "docker.io/library/alpine:latest", pattern: "docker.io"},
	{ref: "DOCKER.IO/library/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "Docker.Io/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "docker.io:443/library/alpine", allowed: true, want: "docker.io/library/alpine:latest"},
	{ref: "bitnami/redis:7", allowed: true, want: "docker.io/bitnami/redis:7"},
	// A first component without '.' or ':' is a Docker Hub namespace, not a host.
	{ref: "dockerio/x", allowed: true, want: "docker.io/dockerio/x:latest"},
	{ref: "ghcr/x", allowed: true, want: "docker.io/ghcr/x:latest"},
	// A tag that spells a host is a tag: this is Docker Hub's evil.com image.
	{ref: "evil.com:ghcr.io", allowed: true, want: "docker.io/library/evil.com:ghcr.io"},
	{ref: "docker.io.evil.com/library/alpine", allowed: false},
	{ref: "evil.docker.io/library/alpine", allowed: false},
	{ref: "index.docker.io.evil.com/library/alpine", allowed: false},
	{ref: "registry-2.docker.io/library/alpine", allowed: false},
	{ref: "hub.docker.com/library/alpine", allowed: false},
	{ref: "docker.com/library/alpine", allowed: false},
	{ref: "registry.hub.docker.com.evil.com/x", allowed: false},
	{ref: "docker.io:5000/library/alpine", allowed: false},
	{ref: "docker.io:80/library/alpine", allowed: false},
	{ref: "xdocker.io/library/alpine", allowed: false},
	{ref: "docker.iox/library/alpine", allowed: false},

	// Azure: one label under azurecr.io, never the apex, never two.
	{ref: "myreg.azurecr.io/app:1", allowed: true, want: "myreg.azurecr.io/app:1", pattern: "*.azurecr.io"},
	{ref: "MyReg.AzureCR.io/app", allowed: true, want: "myreg.azurecr.io/app:latest"},
	{ref: "xn--bcher-kva.azurecr.io/app", allowed: true},
	{ref: strings.Repeat("a", 63) + ".azurecr.io/app", allowed: true},
	{ref: strings.Repeat("a", 64) + ".azurecr.io/app", allowed: false},
	{ref: "azurecr.io/app", allowed: false},
	{ref: "a.b.azurecr.io/app", allowed: false},
	{ref: "evilazurecr.io/app", allowed: false},
	{ref: "myreg-azurecr.io/app", allowed: false},
	{ref: "myreg.azurecr.io.evil.com/app", allowed: false},
	{ref: "azurecr.io.evil.com/app", allowed: false},
	{ref: "myreg.azurecr.iox/app", allowed: false},
	{ref: "myreg.azurecr.io:5000/app", allowed: false},
	{ref: "myreg.azurecr.io:8443/app", allowed: false},

	// Amazon ECR: 12-digit account, region-shaped label, nothing more.
	{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", allowed: true, pattern: "<account>.dkr.ecr.<region>.amazonaws.com"},
	{ref: "123456789012.dkr.ecr.eu-central-1.amazonaws.com/team/app:v1", allowed: true},
	{ref: "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/app", allowed: true},
	{ref: "123456789012.DKR.ECR.US-WEST-2.AMAZONAWS.COM/app", allowed: true, want: "123456789012.dkr.ecr.us-west-2.amazonaws.com/app:latest"},
	{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.com:443/app", allowed: true, want: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"},
	{ref: "12345678901.dkr.ecr.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "1234567890123.dkr.ecr.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "abcdefghijkl.dkr.ecr.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "12345678901a.dkr.ecr.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "dkr.ecr.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "x.123456789012.dkr.ecr.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn/app", allowed: false},
	{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.co/app", allowed: false},
	{ref: "123456789012.dkr.ecr.evil.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr.us-east.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr.us-east-123.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr.us-east-1.evil.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr.evil.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr-ecr.us-east-1.on.aws/app", allowed: false},
	{ref: "123456789012.s3.us-east-1.amazonaws.com/app", allowed: false},
	{ref: "123456789012.dkr.ecr.us-east-1.amazonaws.com:5000/app", allowed: false},
	{ref: "123456789012-dkr.ecr.us-east-1.amazonaws.com/app", allowed: false},

	// Artifact Registry: a wildcard inside one label, never a subdomain.
	{ref: "us-central1-docker.pkg.dev/proj/repo/img:1", allowed: true, pattern: "*-docker.pkg.dev"},
	{ref: "europe-docker.pkg.dev/proj/repo/img", allowed: true},
	{ref: "docker-docker.pkg.dev/p/r/i", allowed: true}, // in Google's zone: harmless
	{ref: "docker.pkg.dev/proj/repo/img", allowed: false},
	{ref: "us-central1.docker.pkg.dev/proj/repo/img", allowed: false},
	{ref: "evil.us-central1-docker.pkg.dev/proj/repo/img", allowed: false},
	{ref: "us-central1-docker.pkg.dev.evil.com/proj/repo/img", allowed: false},
	{ref: "us-central1-dockerx.pkg.dev/proj/repo/img", allowed: false},
	{ref: "us-central1-docker.pkg.devx/proj/repo/img", allowed: false},
	{ref: "us-central1-docker-pkg.dev/proj/repo/img", allowed: false},
	{ref: "-docker.pkg.dev/proj/repo/img", allowed: false},

	// gcr.io and its regional hosts.
	{ref: "gcr.io/proj/img", allowed: true, pattern: "gcr.io"},
	{ref: "eu.gcr.io/proj/img", allowed: true, pattern: "*.gcr.io"},
	{ref: "us.gcr.io/proj/img", allowed: true},
	{ref: "a.b.gcr.io/proj/img", allowed: false},
	{ref: "gcr.io.evil.com/proj/img", allowed: false},
	{ref: "evil-gcr.io/proj/img", allowed: false},
	{ref: "evilgcr.io/proj/img", allowed: false},
	{ref: "gcr.io:5000/proj/img", allowed: false},

	// ghcr.io, quay.io, public.ecr.aws, registry.gitlab.com.
	{ref: "ghcr.io/org/img", allowed: true, want: "ghcr.io/org/img:latest", pattern: "ghcr.io"},
	{ref: "GHCR.IO/org/img", allowed: true, want: "ghcr.io/org/img:latest"},
	{ref: "ghcr.io:443/org/img", allowed: true, want: "ghcr.io/org/img:latest"},
	{ref: "ghcr.io:0443/org/img", allowed: true, want: "ghcr.io/org/img:latest"},
	{ref: "ghcr.io/org/img@sha256:" + hex64, allowed: true, want: "ghcr.io/org/img@sha256:" + hex64},
	{ref: "ghcr.io/org/img:1.0@sha256:" + hex64, allowed: true, want: "ghcr.io/org/img:1.0@sha256:" + hex64},
	{ref: "ghcr.io/evil.com/img", allowed: true, want: "ghcr.io/evil.com/img:latest"}, // a path that spells a host is a path
	{ref: "ghcr.io/org/img:evil.com", allowed: true},
	{ref: "quay.io/prometheus/node-exporter:v1.8.0", allowed: true},
	{ref: "public.ecr.aws/nginx/nginx:latest", allowed: true},
	{ref: "registry.gitlab.com/group/sub/project/image:1", allowed: true},
	{ref: "ghcr.io.evil.com/org/img", allowed: false},
	{ref: "ghcr.io-evil.com/org/img", allowed: false},
	{ref: "evilghcr.io/org/img", allowed: false},
	{ref: "gghcr.io/org/img", allowed: false},
	{ref: "ghcr.ioo/org/img", allowed: false},
	{ref: "ghcr.i0/org/img", allowed: false},
	{ref: "www.ghcr.io/org/img", allowed: false},
	{ref: "ghcr.io:80/org/img", allowed: false},
	{ref: "ghcr.io:5000/org/img", allowed: false},
	{ref: "quay.io.evil/x", allowed: false},
	{ref: "evil.public.ecr.aws/x", allowed: false},
	{ref: "public.ecr.aws.evil.com/x", allowed: false},
	{ref: "publicecr.aws/x", allowed: false},
	{ref: "gitlab.com/group/image", allowed: false},
	{ref: "evil.registry.gitlab.com/group/image", allowed: false},
	{ref: "registry.gitlab.com.evil.com/group/image", allowed: false},

	// Paths, tags and digests that spell an allowed host.
	{ref: "evil.com/ghcr.io/org/img", allowed: false},
	{ref: "evil.com/docker.io/library/alpine", allowed: false},
	{ref: "evil.com:443/docker.io/library/alpine", allowed: false},
	{ref: "localhost/ghcr.io/x", allowed: false},
	{ref: "evil.com/x:ghcr.io", allowed: false},
	{ref: "evil.com/x@sha256:" + hex64, allowed: false},
	{ref: "evil.com/ghcr.io:ghcr.io@sha256:" + hex64, allowed: false},

	// User-info, schemes, query strings and other URL parts never parse.
	{ref: "user@ghcr.io/org/img", allowed: false},
	{ref: "user:pass@ghcr.io/org/img", allowed: false},
	{ref: "ghcr.io@evil.com/org/img", allowed: false},
	{ref: "evil.com@ghcr.io/org/img", allowed: false},
	{ref: "https://ghcr.io/org/img", allowed: false},
	{ref: "//ghcr.io/org/img", allowed: false},
	{ref: "ghcr.io/org/img?ns=evil.com", allowed: false},
	{ref: "ghcr.io/org/img#x", allowed: false},
	{ref: `ghcr.io\evil.com/img`, allowed: false},
	{ref: "ghcr.io/../evil/img", allowed: false},
	{ref: "ghcr.io/./img", allowed: false},

	// Trailing dots and empty parts.
	{ref: "ghcr.io./org/img", allowed: false},
	{ref: "ghcr.io../org/img", allowed: false},
	{ref: ".ghcr.io/org/img", allowed: false},
	{ref: "ghcr..io/org/img", allowed: false},
	{ref: "", allowed: false},
	{ref: "/", allowed: false},
	{ref: "ghcr.io/", allowed: false},
	{ref: "ghcr.io//img", allowed: false},
	{ref: "ghcr.io/org/", allowed: false},
	{ref: ":latest", allowed: false},
	{ref: "@sha256:" + hex64, allowed: false},
	{ref: "ghcr.io/org/img:", allowed: false},
	{ref: "ghcr.io/org/img@", allowed: false},
	{ref: "ghcr.io:/org/img", allowed: false},
	{ref: "ghcr.io/org/img@sha256:abc", allowed: false},
	{ref: hex64, allowed: false},

	// Upper case in the repository is invalid, in the host it is folded.
	{ref: "ghcr.io/Org/img", allowed: false},
	{ref: "Alpine", allowed: false},

	// Ports.
	{ref: "ghcr.io:0/org/img", allowed: false},
	{ref: "ghcr.io:65536/org/img", allowed: false},
	{ref: "ghcr.io:99999999999999999999/org/img", allowed: false},
	{ref: "ghcr.io:-1/org/img", allowed: false},
	{ref: "ghcr.io:44 3/org/img", allowed: false},

	// IP literals and numeric names.
	{ref: "127.0.0.1/x", allowed: false},
	{ref: "127.0.0.1:5000/x", allowed: false},
	{ref: "[::1]:5000/x", allowed: false},
	{ref: "[::1]/x", allowed: false},
	{ref: "127.1/x", allowed: false},
	{ref: "0x7f.0.0.1/x", allowed: false},
	{ref: "1.2.3.4.5/x", allowed: false},
	{ref: "[fe80::1%25eth0]:5000/x", allowed: false},
	{ref: "::1/x", allowed: false},
	{ref: "localhost:5000/x", allowed: false},
	{ref: "localhost/x", allowed: false},

	// IDN, punycode and Unicode.
	{ref: "xn--ghcr-xqa.io/org/img", allowed: false},
	{ref: "ghcr.xn--io-ldb/org/img", allowed: false},
	{ref: "xn--80ak6aa92e.com/org/img", allowed: false},
	{ref: "ghсr.io/org/img", allowed: false},       // Cyrillic es
	{ref: "ｇhcr.io/org/img", allowed: false},       // fullwidth g
	{ref: "ghcr。io/org/img", allowed: false},       // ideographic full stop
	{ref: "ghcr.io\u200b/org/img", allowed: false}, // zero-width space
	{ref: "ghcr.ıo/org/img", allowed: false},       // dotless i
	{ref: "ghcr.io/оrg/img", allowed: false},       // Cyrillic o in the path
	{ref: "ghcr.io/org/img:täg", allowed: false},
	{ref: "myreg.azurecr.io/\u202eimg", allowed: false}, // right-to-left override

	// Whitespace and control characters.
	{ref: " ghcr.io/org/img", allowed: false},
	{ref: "ghcr.io/org/img ", allowed: false},
	{ref: "ghcr.io/org/img\n", allowed: false},
	{ref: "ghcr.io/org/img\nallow docker.io/library/alpine", allowed: false},
	{ref: "ghcr.io/org/img\x00", allowed: false},
	{ref: "ghcr.io\t/org/img", allowed: false},

	// Over-long parts.
	{ref: "ghcr.io/" + strings.Repeat("a", 256), allowed: false},
	{ref: "registry-1.docker.io/" + strings.Repeat("a", 250), allowed: false}, // 258 with library/
	{ref: "docker.io/" + strings.Repeat("a", 250), allowed: false},
	{ref: "ghcr.io/" + strings.Repeat("a/", 127) + "a", allowed: true},
	{ref: "ghcr.io/org/img:" + strings.Repeat("t", 128), allowed: true},
	{ref: "ghcr.io/org/img:" + strings.Repeat("t", 129), allowed: false},
	{ref: strings.Repeat("a.", 130) + "azurecr.io/x", allowed: false},
	{ref: strings.Repeat("x", 1<<16), allowed: false},
}

// customPatterns exercises ports, IP literals and repository prefixes.
var customPatterns = []string{
	"ghcr.io/myorg/*",
	"docker.io/library/*",
	"docker.io/bitnami/redis",
	"127.0.0.1:5001",
	"[::1]:5000",
	"quay.io/team/app",
	"localhost:5000/dev/*",
	"*.corp.example.com",
	"registry.example.com:8443/*",
}

var customCorpus = []refCase{
	{ref: "ghcr.io/myorg/x", allowed: true, pattern: "ghcr.io/myorg/*"},
	{ref: "ghcr.io/myorg/x/y:1", allowed: true},
	{ref: "GHCR.IO:443/myorg/x", allowed: true},
	{ref: "ghcr.io/myorg", allowed: false},
	{ref: "ghcr.io/myorgevil/x", allowed: false},
	{ref: "ghcr.io/myorg.evil/x", allowed: false},
	{ref: "ghcr.io/myorg-x/y", allowed: false},
	{ref: "ghcr.io/my/org/x", allowed: false},
	{ref: "ghcr.io/x/myorg/y", allowed: false},
	{ref: "ghcr.io/myorg_/x", allowed: false},
	{ref: "evil.com/myorg/x", allowed: false},
	{ref: "ghcr.io.evil.com/myorg/x", allowed: false},

	{ref: "alpine", allowed: true, pattern: "docker.io/library/*"},
	{ref: "registry-1.docker.io/alpine", allowed: true, pattern: "docker.io/library/*"},
	{ref: "bitnami/redis", allowed: true, pattern: "docker.io/bitnami/redis"},
	{ref: "bitnami/redis:7@sha256:" + hex64, allowed: true},
	{ref: "bitnami/redis-evil", allowed: false},
	{ref: "bitnami/redis/x", allowed: false},
	{ref: "bitnami/postgres", allowed: false},
	{ref: "evil/library", allowed: false},
	{ref: "libraryx/alpine", allowed: false},

	{ref: "127.0.0.1:5001/x", allowed: true, pattern: "127.0.0.1:5001"},
	{ref: "127.0.0.1:05001/x", allowed: true},
	{ref: "127.0.0.1:5002/x", allowed: false},
	{ref: "127.0.0.1/x", allowed: false},
	{ref: "127.0.0.10:5001/x", allowed: false},
	{ref: "127.0.0.1.evil.com:5001/x", allowed: false},
	{ref: "evil.127.0.0.1:5001/x", allowed: false},
	{ref: "127.000.000.001:5001/x", allowed: false},
	{ref: "[::1]:5000/x", allowed: true, pattern: "[::1]:5000"},
	{ref: "[0:0:0:0:0:0:0:1]:5000/x", allowed: true, want: "[::1]:5000/x:latest"},
	{ref: "[::1]/x", allowed: false},
	{ref: "[::2]:5000/x", allowed: false},
	{ref: "[::ffff:7f00:1]:5001/x", allowed: false},

	{ref: "quay.io/team/app:1", allowed: true, pattern: "quay.io/team/app"},
	{ref: "quay.io/team/app2", allowed: false},
	{ref: "quay.io/team/app/x", allowed: false},
	{ref: "quay.io/team", allowed: false},

	{ref: "localhost:5000/dev/x", allowed: true},
	{ref: "LOCALHOST:5000/dev/x", allowed: true},
	{ref: "localhost:5000/prod/x", allowed: false},
	{ref: "localhost/dev/x", allowed: false},
	{ref: "localhost:5000/dev", allowed: false},

	{ref: "a.corp.example.com/x", allowed: true, pattern: "*.corp.example.com"},
	{ref: "corp.example.com/x", allowed: false},
	{ref: "a.b.corp.example.com/x", allowed: false},
	{ref: "a.corp.example.com:5000/x", allowed: false},
	{ref: "a.corp.example.com.evil/x", allowed: false},

	{ref: "registry.example.com:8443/x", allowed: true},
	{ref: "registry.example.com:8443/a/b/c", allowed: true},
	{ref: "registry.example.com/x", allowed: false},
	{ref: "registry.example.com:8444/x", allowed: false},
}

func runCorpus(t *testing.T, p *Policy, corpus []refCase) {
	t.Helper()
	for _, c := range corpus {
		name := c.ref
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			v := p.Check(c.ref)
			if v.Allowed != c.allowed {
				t.Fatalf("Check(%q).Allowed = %v, want %v (reason: %s)", c.ref, v.Allowed, c.allowed, v.Reason)
			}
			if v.Reason == "" {
				t.Errorf("Check(%q): empty reason", c.ref)
			}
			if c.want != "" && v.Reference != c.want {
				t.Errorf("Check(%q).Reference = %q, want %q", c.ref, v.Reference, c.want)
			}
			if v.Allowed {
				if c.pattern != "" && v.Pattern != c.pattern {
					t.Errorf("Check(%q).Pattern = %q, want %q", c.ref, v.Pattern, c.pattern)
				}
				if !strings.Contains(v.Reason, v.Pattern) || v.Pattern == "" {
					t.Errorf("Check(%q): allowed reason %q does not name pattern %q", c.ref, v.Reason, v.Pattern)
				}
				if v.Host == "" || v.Repository == "" || !strings.HasPrefix(v.Reference, v.Host+"/"+v.Repository) {
					t.Errorf("Check(%q): inconsistent verdict %+v", c.ref, v)
				}
			} else if v.Pattern != "" {
				t.Errorf("Check(%q): denied verdict names pattern %q", c.ref, v.Pattern)
			}
		})
	}
}

func TestDefaultCorpus(t *testing.T) { runCorpus(t, Default(), defaultCorpus) }

func TestCustomCorpus(t *testing.T) {
	p, err := New(customPatterns)
	if err != nil {
		t.Fatal(err)
	}
	runCorpus(t, p, customCorpus)
}
