package pattern

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/spacelift-io/tollgate/internal/oneline"
)

// ErrInvalidPattern is wrapped by every error of Compile.
var ErrInvalidPattern = errors.New("invalid allowlist pattern")

// Placeholders that stand for one whole label of a fixed shape.
const (
	// Account is exactly 12 decimal digits: an AWS account ID.
	Account = "<account>"
	// Region is an AWS region name such as us-east-1 or us-gov-west-1.
	Region = "<region>"
)

// pathComponent is the reference grammar's path component (distribution's
// reference package): lower-case alphanumerics joined by '.', '_', '__' or
// runs of '-'.
// Compiled on first use, like config's regexps: the credential helper links
// this package through config and matches no pattern on its warm path.
var pathComponent = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
})

type labelKind uint8

const (
	literal  labelKind = iota // the label itself
	anyLabel                  // "*": any one whole label
	glob                      // "pre*suf": one or more characters between pre and suf
	account                   // "<account>"
	region                    // "<region>"
)

type labelPattern struct {
	kind     labelKind
	text     string // literal
	pre, suf string // glob
}

// Pattern is one compiled allowlist pattern. It is immutable and safe for
// concurrent use.
type Pattern struct {
	raw string

	exact  string         // canonical host name when the host has no wildcard
	labels []labelPattern // host labels when it has one
	port   string         // canonical port, "" for the default

	// Repository restriction: none when anyRepo; otherwise repo is the
	// exact repository, or the prefix (without trailing "/") when prefix.
	anyRepo bool
	prefix  bool
	repo    string
}

// String returns the pattern as it was written.
func (p *Pattern) String() string { return p.raw }

// HostPattern returns the canonical host part of the pattern (with port).
func (p *Pattern) HostPattern() string {
	name := p.exact
	if p.labels != nil {
		parts := make([]string, len(p.labels))
		for i, l := range p.labels {
			switch l.kind {
			case literal:
				parts[i] = l.text
			case anyLabel:
				parts[i] = "*"
			case glob:
				parts[i] = l.pre + "*" + l.suf
			case account:
				parts[i] = Account
			case region:
				parts[i] = Region
			}
		}
		name = strings.Join(parts, ".")
	}
	if p.port != "" {
		return name + ":" + p.port
	}
	return name
}

// Repository describes the repository restriction: "" for any repository,
// "myorg/*" for a prefix, "myorg/app" for one repository.
func (p *Pattern) Repository() string {
	switch {
	case p.anyRepo:
		return ""
	case p.prefix && p.repo == "":
		return "*"
	case p.prefix:
		return p.repo + "/*"
	}
	return p.repo
}

// Compile parses one allowlist pattern:
//
//	host[:port][/repository]
//
// See package allowlist for the grammar and the matching rules. Errors wrap
// ErrInvalidPattern and say what is wrong.
func Compile(s string) (*Pattern, error) {
	p, err := compile(s)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidPattern, oneline.Quote(s), err.Error())
	}
	return p, nil
}

func compile(s string) (*Pattern, error) {
	if s == "" {
		return nil, errors.New("empty pattern")
	}
	if strings.Contains(s, "://") {
		return nil, errors.New("write the registry host without a scheme (ghcr.io, not https://ghcr.io)")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 {
			return nil, errors.New("non-ASCII characters; write an internationalised host name in its punycode (xn--) form")
		} else if c <= ' ' || c == 0x7f {
			return nil, errors.New("contains a space or control character")
		}
	}
	if strings.ContainsAny(s, "@?#") {
		return nil, errors.New("a pattern names a host and optionally a repository; it may not contain '@', '?' or '#' (no user-info, tag or digest)")
	}
	hostPart, repoPart, hasRepo := strings.Cut(s, "/")
	p := &Pattern{raw: s}
	if err := p.compileHost(hostPart); err != nil {
		return nil, err
	}
	if !hasRepo {
		p.anyRepo = true
		return p, nil
	}
	if err := p.compileRepo(repoPart); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pattern) compileHost(s string) error {
	if !strings.ContainsAny(s, "*<>") {
		h, err := parseHost(s)
		if err != nil {
			return err
		}
		p.exact, p.port = h.Name, h.Port
		return nil
	}
	if strings.HasPrefix(s, "[") {
		return errors.New("wildcards are not allowed in IP addresses")
	}
	name, port, err := splitPort(s)
	if err != nil {
		return err
	}
	p.port = port
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if len(name) > maxHostLen {
		return fmt.Errorf("host name longer than %d characters", maxHostLen)
	}
	parts := strings.Split(name, ".")
	p.labels = make([]labelPattern, len(parts))
	for i, l := range parts {
		lp, err := compileLabel(l)
		if err != nil {
			return err
		}
		p.labels[i] = lp
	}
	// A wildcard needs two literal labels to its right: "*.io" or "*.*"
	// would allow most of the internet, which is never what was meant.
	n := len(p.labels)
	if n < 3 || p.labels[n-1].kind != literal || p.labels[n-2].kind != literal {
		return errors.New("too broad: a pattern with a wildcard must name at least its last two labels literally (*.example.com, not *.com)")
	}
	if isNumeric(p.labels[n-1].text) {
		return errors.New("wildcards are not allowed in IP addresses")
	}
	return nil
}

func compileLabel(l string) (labelPattern, error) {
	switch {
	case l == "*":
		return labelPattern{kind: anyLabel}, nil
	case l == Account:
		return labelPattern{kind: account}, nil
	case l == Region:
		return labelPattern{kind: region}, nil
	case strings.ContainsAny(l, "<>"):
		return labelPattern{}, fmt.Errorf("label %q: the placeholders are %s and %s, each standing for a whole label", l, Account, Region)
	case strings.Count(l, "*") > 1:
		return labelPattern{}, fmt.Errorf("label %q: at most one '*' per label", l)
	case strings.Contains(l, "*"):
		pre, suf, _ := strings.Cut(l, "*")
		// The label with the '*' replaced by one character must be valid.
		if err := checkLabel(pre + "x" + suf); err != nil {
			return labelPattern{}, err
		}
		if len(pre)+len(suf)+1 > maxLabelLen {
			return labelPattern{}, fmt.Errorf("label longer than %d characters", maxLabelLen)
		}
		return labelPattern{kind: glob, pre: pre, suf: suf}, nil
	}
	if err := checkLabel(l); err != nil {
		return labelPattern{}, err
	}
	return labelPattern{kind: literal, text: l}, nil
}

func (p *Pattern) compileRepo(s string) error {
	if s == "" {
		return errors.New("empty repository after '/' (write ghcr.io, or ghcr.io/myorg/*)")
	}
	comps := strings.Split(s, "/")
	last := len(comps) - 1
	if comps[last] == "*" {
		p.prefix = true
		comps = comps[:last]
	}
	for _, c := range comps {
		switch {
		case c == "":
			return errors.New("empty repository path component ('//' or a trailing '/')")
		case strings.Contains(c, "*"):
			return fmt.Errorf("repository component %q: '*' is allowed only as the whole last component (myorg/*)", c)
		case strings.ToLower(c) != c:
			return fmt.Errorf("repository component %q: repository names are lower case", c)
		case !pathComponent().MatchString(c):
			return fmt.Errorf("repository component %q is not a valid repository name component", c)
		}
	}
	p.repo = strings.Join(comps, "/")
	if len(p.repo) > 255 {
		return errors.New("repository longer than 255 characters")
	}
	// Docker Hub's official images live under library/, as the reference
	// parser normalises them: docker.io/alpine is docker.io/library/alpine.
	if !p.prefix && p.exact == DockerHub && p.port == "" && len(comps) == 1 {
		p.repo = "library/" + p.repo
	}
	return nil
}

// MatchHost reports whether the canonical host h matches the host part of
// the pattern, port included.
func (p *Pattern) MatchHost(h Host) bool {
	if h.Port != p.port {
		return false
	}
	return p.MatchHostName(h)
}

// MatchHostName is MatchHost ignoring the port; it serves to explain a
// denial ("the port differs").
func (p *Pattern) MatchHostName(h Host) bool {
	if p.labels == nil {
		return h.Name == p.exact
	}
	if h.IP || len(h.labels) != len(p.labels) {
		return false
	}
	// Right to left: the literal suffix rejects most hosts at once.
	for i := len(p.labels) - 1; i >= 0; i-- {
		if !p.labels[i].match(h.labels[i]) {
			return false
		}
	}
	return true
}

func (lp *labelPattern) match(l string) bool {
	switch lp.kind {
	case literal:
		return l == lp.text
	case anyLabel:
		return l != ""
	case glob:
		return len(l) > len(lp.pre)+len(lp.suf) && strings.HasPrefix(l, lp.pre) && strings.HasSuffix(l, lp.suf)
	case account:
		return len(l) == 12 && isNumeric(l)
	case region:
		return isRegion(l)
	}
	return false
}

// isRegion accepts the shape of AWS region names: two or more groups of
// lower-case letters and a final group of one or two digits, joined by '-'
// (us-east-1, ap-southeast-2, us-gov-west-1, eusc-de-east-1).
func isRegion(l string) bool {
	groups := strings.Split(l, "-")
	if len(groups) < 3 {
		return false
	}
	last := groups[len(groups)-1]
	if len(last) > 2 || !isNumeric(last) {
		return false
	}
	for _, g := range groups[:len(groups)-1] {
		if g == "" {
			return false
		}
		for i := 0; i < len(g); i++ {
			if g[i] < 'a' || g[i] > 'z' {
				return false
			}
		}
	}
	return true
}

// AnyRepository reports whether the pattern allows every repository of its
// hosts.
func (p *Pattern) AnyRepository() bool { return p.anyRepo }

// MatchRepository reports whether repository (a valid, normalised path such
// as "library/alpine") is allowed by the pattern's repository part. Matching
// is on whole path components.
func (p *Pattern) MatchRepository(repository string) bool {
	switch {
	case p.anyRepo:
		return true
	case p.prefix && p.repo == "":
		return repository != ""
	case p.prefix:
		return len(repository) > len(p.repo)+1 &&
			repository[len(p.repo)] == '/' &&
			strings.HasPrefix(repository, p.repo)
	}
	return repository == p.repo
}

// ValidRepository reports whether repository is a valid repository path in
// the reference grammar: components separated by '/', each lower-case
// alphanumerics joined by '.', '_', '__' or '-'; at most 255 characters.
func ValidRepository(repository string) error {
	if repository == "" {
		return errors.New("empty repository")
	}
	if len(repository) > 255 {
		return errors.New("repository longer than 255 characters")
	}
	for _, c := range strings.Split(repository, "/") {
		if !pathComponent().MatchString(c) {
			if c == "" {
				return errors.New("empty repository path component")
			}
			return fmt.Errorf("repository component %s is not valid (lower-case letters, digits and inner '.', '_', '-')", oneline.Quote(c))
		}
	}
	return nil
}
