package allowlist

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/reference"

	"github.com/spacelift-io/tollgate/allowlist/name"
	"github.com/spacelift-io/tollgate/allowlist/pattern"
	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/internal/oneline"
)

// Policy is a compiled allowlist. It is immutable and safe for concurrent
// use. A nil *Policy, like an empty one, denies everything.
type Policy struct {
	patterns []*pattern.Pattern
}

// Verdict is the decision for one image reference or repository.
type Verdict struct {
	Allowed bool `json:"allowed"`
	// Reference is the normalised reference, e.g.
	// docker.io/library/alpine:3.20 (":latest" added when the reference
	// names neither tag nor digest). When the reference did not parse it is
	// the input as given.
	Reference string `json:"reference"`
	// Host is the canonical registry host: lower case, no default port,
	// Docker Hub = "docker.io". Empty when the reference did not parse.
	Host string `json:"host,omitempty"`
	// Repository is the repository path, e.g. library/alpine.
	Repository string `json:"repository,omitempty"`
	// Pattern is the pattern that allowed the reference, as written; ""
	// when denied.
	Pattern string `json:"pattern,omitempty"`
	// Reason says which pattern allowed the reference, or why none did and
	// what to change.
	Reason string `json:"reason"`
}

// ErrInvalidPattern is wrapped by New's error for a bad pattern.
var ErrInvalidPattern = pattern.ErrInvalidPattern

// ErrInvalidHost is wrapped by CanonicalHost's errors.
var ErrInvalidHost = pattern.ErrInvalidHost

// New compiles patterns in order. An invalid pattern is an error naming it
// (and its position in the list) and wrapping ErrInvalidPattern. An empty
// list is a valid policy that denies everything.
func New(patterns []string) (*Policy, error) {
	p := &Policy{patterns: make([]*pattern.Pattern, 0, len(patterns))}
	var errs []error
	for i, s := range patterns {
		c, err := pattern.Compile(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowlist entry %d: %w", i+1, err))
			continue
		}
		p.patterns = append(p.patterns, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

var defaultPolicy = sync.OnceValue(func() *Policy {
	p, err := New(config.Default().Allowlist)
	if err != nil {
		// The embedded default is covered by tests; reaching this is a
		// build defect, not a runtime condition.
		panic("allowlist: embedded default allowlist does not compile: " + err.Error())
	}
	return p
})

// Default returns the policy of the embedded default configuration
// (config/default.yaml): the registries of the developers' brief.
func Default() *Policy { return defaultPolicy() }

// Patterns returns the policy's patterns as written.
func (p *Policy) Patterns() []string {
	if p == nil {
		return nil
	}
	out := make([]string, len(p.patterns))
	for i, c := range p.patterns {
		out[i] = c.String()
	}
	return out
}

// CanonicalHost returns the canonical form of a registry host: lower case,
// no trailing dot, the default port :443 folded, canonical IP literals, and
// Docker Hub's aliases (index.docker.io, registry-1.docker.io,
// registry.hub.docker.com) folded to docker.io. An invalid host is an error
// wrapping ErrInvalidHost.
func CanonicalHost(host string) (string, error) { return pattern.CanonicalHost(host) }

// Check decides whether the image reference ref may be pulled. ref is
// parsed and normalised as docker does (distribution/reference): a missing
// host is docker.io, a one-component Docker Hub repository gets "library/".
// A reference that does not parse is denied, with the parse error as the
// reason.
func (p *Policy) Check(ref string) Verdict {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		// The parser's message may quote the input, which can be huge.
		return Verdict{Reference: ref, Reason: fmt.Sprintf("invalid image reference %s: %s", oneline.Quote(ref), oneline.Cut(err.Error()))}
	}
	r, err := name.New(reference.Domain(named), reference.Path(named))
	switch {
	case errors.Is(err, reference.ErrNameTooLong):
		return Verdict{Reference: ref, Reason: fmt.Sprintf("invalid image reference %s: %v", oneline.Quote(ref), reference.ErrNameTooLong)}
	case err != nil:
		return Verdict{Reference: ref, Reason: fmt.Sprintf("invalid image reference %s: %v", oneline.Quote(ref), err)}
	}
	var b strings.Builder
	b.WriteString(r.String())
	tagged, hasTag := named.(reference.Tagged)
	digested, hasDigest := named.(reference.Digested)
	if hasTag {
		b.WriteByte(':')
		b.WriteString(tagged.Tag())
	}
	if hasDigest {
		b.WriteByte('@')
		b.WriteString(digested.Digest().String())
	}
	if !hasTag && !hasDigest {
		b.WriteString(":latest")
	}
	return p.decideName(r, b.String())
}

// CheckRepository decides whether repository (a path such as
// "library/alpine") on registry host may be pulled. host is canonicalised
// as by CanonicalHost and Docker Hub's "library/" applied (name.New); an
// invalid host or repository is denied.
func (p *Policy) CheckRepository(host, repository string) Verdict {
	r, err := name.New(host, repository)
	if err != nil {
		return Verdict{Reference: host + "/" + repository, Reason: err.Error()}
	}
	return p.Decide(r)
}

// Decide decides whether repository r may be pulled; the proxy asks it for
// every request, with the name its routing made.
func (p *Policy) Decide(r name.Repository) Verdict {
	return p.decideName(r, r.String())
}

// decideName splits r's host for matching and decides.
func (p *Policy) decideName(r name.Repository, ref string) Verdict {
	h, err := pattern.ParseHost(r.Host)
	if err != nil {
		// Not made by name.New: refused, never matched as written.
		return Verdict{Reference: ref, Reason: err.Error()}
	}
	return p.decide(h, r.Path, ref)
}

func (p *Policy) decide(h pattern.Host, repo, ref string) Verdict {
	v := Verdict{Reference: ref, Host: h.String(), Repository: repo}
	var patterns []*pattern.Pattern
	if p != nil {
		patterns = p.patterns
	}
	var hostMatches []*pattern.Pattern
	for _, c := range patterns {
		if !c.MatchHost(h) {
			continue
		}
		if c.MatchRepository(repo) {
			v.Allowed = true
			v.Pattern = c.String()
			v.Reason = fmt.Sprintf("allowed by allowlist pattern %q", c.String())
			return v
		}
		hostMatches = append(hostMatches, c)
	}
	v.Reason = denyReason(patterns, h, repo, hostMatches)
	return v
}

const fix = "to allowlist: in the tollgate config"

func denyReason(patterns []*pattern.Pattern, h pattern.Host, repo string, hostMatches []*pattern.Pattern) string {
	host := h.String()
	if len(patterns) == 0 {
		return "the allowlist is empty, so nothing may be pulled; add registry patterns " + fix
	}
	if len(hostMatches) > 0 {
		allowed := make([]string, len(hostMatches))
		for i, c := range hostMatches {
			allowed[i] = strconv.Quote(c.String())
		}
		return fmt.Sprintf("repository %s on %s is not allowed: the allowlist names this host only as %s; add %q (or a prefix ending in /*) %s",
			repo, host, strings.Join(allowed, ", "), host+"/"+repo, fix)
	}
	for _, c := range patterns {
		if c.MatchHostName(h) {
			return fmt.Sprintf("registry host %s is not in the allowlist: pattern %q names another port (the port is part of the host; no port means 443); add %q %s",
				host, c.String(), host, fix)
		}
	}
	return fmt.Sprintf("registry host %s is not in the allowlist; add %q (or a pattern covering it) %s", host, host, fix)
}
