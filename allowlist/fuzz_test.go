package allowlist

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// The fuzz property is checked by a deliberately simple, independent
// matcher: it splits the raw reference itself, canonicalises the host with
// plain string operations, and turns each pattern into an anchored regular
// expression label by label. It shares no code with the policy.

var simpleAliases = map[string]bool{
	"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true, "registry.hub.docker.com": true,
}

// simpleSplit returns the host and repository the raw reference names,
// the way docker reads it: the first component is a host when it contains
// '.' or ':', is "localhost", or has upper case; otherwise Docker Hub.
func simpleSplit(ref string) (host, repo string) {
	name := ref
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	first, rest, ok := strings.Cut(name, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		host, repo = first, rest
	} else {
		host, repo = "docker.io", name
	}
	if i := strings.LastIndexByte(repo, ':'); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo = repo[:i]
	}
	return host, repo
}

// simpleCanon lower-cases, drops the :443 port (leading zeros allowed) and
// folds Docker Hub aliases. IPv6 literals are normalised with netip.
func simpleCanon(host string) string {
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port = host[:i], strings.TrimLeft(host[i+1:], "0")
	}
	if port == "443" {
		port = ""
	}
	name = strings.ToLower(name)
	if strings.HasPrefix(name, "[") {
		if a, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
			name = "[" + a.String() + "]"
		}
	}
	if port == "" && simpleAliases[name] {
		name = "docker.io"
	}
	if port != "" {
		return name + ":" + port
	}
	return name
}

// simpleHostRegexp turns a pattern's host part into a regexp over the
// canonical host: each '.'-separated label on its own, '*' as one or more
// label characters, the placeholders as their digit and region shapes.
func simpleHostRegexp(pat string) *regexp.Regexp {
	host, _, _ := strings.Cut(pat, "/")
	if !strings.ContainsAny(host, "*<") {
		return regexp.MustCompile(`^` + regexp.QuoteMeta(simpleCanon(strings.TrimSuffix(host, "."))) + `$`)
	}
	host = strings.ToLower(host)
	var port string
	if !strings.HasPrefix(host, "[") {
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host, port = host[:i], host[i:]
		}
	}
	if port == ":443" {
		port = ""
	}
	var parts []string
	for _, l := range strings.Split(host, ".") {
		switch {
		case l == "<account>":
			parts = append(parts, `[0-9]{12}`)
		case l == "<region>":
			parts = append(parts, `[a-z]+(?:-[a-z]+)+-[0-9]{1,2}`)
		default:
			parts = append(parts, strings.ReplaceAll(regexp.QuoteMeta(l), `\*`, `[a-z0-9-]+`))
		}
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `\.`) + regexp.QuoteMeta(port) + `$`)
}

// simpleRepoOK checks a pattern's repository part on whole components.
func simpleRepoOK(pat, host, repo string) bool {
	_, rp, ok := strings.Cut(pat, "/")
	if !ok {
		return true
	}
	if strings.HasSuffix(rp, "/*") || rp == "*" {
		prefix := strings.TrimSuffix(strings.TrimSuffix(rp, "*"), "/")
		if prefix == "" {
			return repo != ""
		}
		return strings.HasPrefix(repo, prefix+"/") && len(repo) > len(prefix)+1
	}
	if host == "docker.io" && !strings.Contains(rp, "/") {
		rp = "library/" + rp
	}
	return repo == rp
}

var fuzzPatterns = append(append([]string(nil), customPatterns...),
	"*.azurecr.io", "<account>.dkr.ecr.<region>.amazonaws.com", "*-docker.pkg.dev", "gcr.io", "*.gcr.io",
	"public.ecr.aws", "registry.gitlab.com", "registry.hub.docker.com", "Index.Docker.IO/team/*")

func FuzzCheck(f *testing.F) {
	for _, c := range defaultCorpus {
		if len(c.ref) < 1000 {
			f.Add(c.ref)
		}
	}
	for _, c := range customCorpus {
		f.Add(c.ref)
	}
	p, err := New(fuzzPatterns)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		v := p.Check(ref)
		if v.Reason == "" {
			t.Fatalf("Check(%q): empty reason", ref)
		}
		if !v.Allowed {
			if v.Pattern != "" {
				t.Fatalf("Check(%q): denied but names pattern %q", ref, v.Pattern)
			}
			return
		}
		host, repo := simpleSplit(ref)
		host = simpleCanon(host)
		if host == "docker.io" && !strings.Contains(repo, "/") {
			repo = "library/" + repo
		}
		if v.Host != host || v.Repository != repo {
			t.Fatalf("Check(%q) allowed host %q repo %q; the reference names host %q repo %q", ref, v.Host, v.Repository, host, repo)
		}
		if !simpleHostRegexp(v.Pattern).MatchString(host) {
			t.Fatalf("Check(%q) allowed by %q, but host %q does not match it on whole labels", ref, v.Pattern, host)
		}
		if !simpleRepoOK(v.Pattern, host, repo) {
			t.Fatalf("Check(%q) allowed by %q, but repository %q does not match it on whole components", ref, v.Pattern, repo)
		}
		// The allowed reference must be printable ASCII: no IDN or
		// control character reaches a pull.
		for i := 0; i < len(v.Reference); i++ {
			if c := v.Reference[i]; c <= ' ' || c >= 0x7f {
				t.Fatalf("Check(%q) allowed reference %q with byte %#x", ref, v.Reference, c)
			}
		}
	})
}

func FuzzCheckRepository(f *testing.F) {
	for _, s := range [][2]string{
		{"ghcr.io", "myorg/x"}, {"ghcr.io.", "myorg/x"}, {"GHCR.IO:443", "myorg/x/y"}, {"registry-1.docker.io", "alpine"},
		{"[::1]:5000", "x"}, {"127.0.0.1:5001", "x"}, {"a.corp.example.com", "x"}, {"myreg.azurecr.io", "a/b"},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", "app"}, {"us-docker.pkg.dev", "p/r/i"}, {"ghcr.io", "myorgevil/x"},
	} {
		f.Add(s[0], s[1])
	}
	p, err := New(fuzzPatterns)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host, repository string) {
		v := p.CheckRepository(host, repository)
		if v.Reason == "" {
			t.Fatalf("CheckRepository(%q, %q): empty reason", host, repository)
		}
		if !v.Allowed {
			return
		}
		canon := simpleCanon(strings.TrimSuffix(strings.Replace(host, ".:", ":", 1), "."))
		if v.Host != canon {
			t.Fatalf("CheckRepository(%q, %q) allowed host %q, want %q", host, repository, v.Host, canon)
		}
		wantRepo := repository
		if canon == "docker.io" && !strings.Contains(repository, "/") {
			wantRepo = "library/" + repository
		}
		if v.Repository != wantRepo {
			t.Fatalf("CheckRepository(%q, %q) allowed repository %q, want %q", host, repository, v.Repository, wantRepo)
		}
		if !simpleHostRegexp(v.Pattern).MatchString(v.Host) || !simpleRepoOK(v.Pattern, v.Host, v.Repository) {
			t.Fatalf("CheckRepository(%q, %q) allowed by %q, which does not match %s/%s", host, repository, v.Pattern, v.Host, v.Repository)
		}
		// What was allowed is a reference docker would read the same way.
		named, err := reference.ParseNormalizedNamed(v.Reference)
		if err != nil || reference.Domain(named) != v.Host || reference.Path(named) != v.Repository {
			t.Fatalf("CheckRepository(%q, %q) allowed %q, which distribution/reference reads as %v (%v)", host, repository, v.Reference, named, err)
		}
	})
}
