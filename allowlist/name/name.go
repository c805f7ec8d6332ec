package name

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/distribution/reference"

	"github.com/spacelift-io/tollgate/allowlist/pattern"
)

// ErrInvalid is wrapped by every error of this package (a host's errors
// wrap pattern.ErrInvalidHost too).
var ErrInvalid = errors.New("invalid name")

// invalid is an error that says what is wrong and wraps ErrInvalid.
type invalid struct{ err error }

func (e invalid) Error() string   { return e.err.Error() }
func (e invalid) Unwrap() []error { return []error{ErrInvalid, e.err} }

func invalidf(format string, args ...any) error { return invalid{fmt.Errorf(format, args...)} }

// Repository is a repository on a registry, in canonical form. Two names
// of one repository (index.docker.io/alpine, docker.io/library/alpine) are
// equal Repository values, so it can be compared and used as a map key.
type Repository struct {
	// Host is the registry host as CanonicalHost gives it: lower case, no
	// trailing dot, no default port, Docker Hub's aliases folded to
	// "docker.io".
	Host string
	// Path is the repository path in the reference grammar, with
	// "library/" before a one-component Docker Hub path.
	Path string
}

// String is host/path, e.g. docker.io/library/alpine.
func (r Repository) String() string { return r.Host + "/" + r.Path }

// New makes the canonical name of repository path on registry host: host
// is canonicalised (CanonicalHost), path checked against the reference
// grammar (lower case, at most 255 characters), and Docker Hub's
// "library/" rule applied after alias folding (registry-1.docker.io,
// alpine is docker.io/library/alpine). It does not apply distribution's
// other defaults: host is required.
func New(host, path string) (Repository, error) {
	h, err := pattern.ParseHost(host)
	if err != nil {
		return Repository{}, invalid{err}
	}
	if err := pattern.ValidRepository(path); err != nil {
		return Repository{}, invalidf("invalid repository %s on %s: %w", quote(path), h, err)
	}
	canonical := path
	if h.Name == pattern.DockerHub && h.Port == "" && !strings.Contains(path, "/") {
		canonical = "library/" + path
		if len(canonical) > reference.RepositoryNameTotalLengthMax {
			return Repository{}, invalidf("invalid repository %s on %s: %w", quote(path), h, reference.ErrNameTooLong)
		}
	}
	return Repository{Host: h.String(), Path: canonical}, nil
}

// Parse reads a repository name as docker and distribution/reference do
// (a missing host is docker.io), then makes it canonical as New does. A
// name with a tag or digest is refused.
func Parse(s string) (Repository, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Repository{}, invalidf("invalid repository name %s: %w", quote(s), err)
	}
	if _, tagged := named.(reference.Tagged); tagged {
		return Repository{}, invalidf("invalid repository name %s: it has a tag", quote(s))
	}
	if _, digested := named.(reference.Digested); digested {
		return Repository{}, invalidf("invalid repository name %s: it has a digest", quote(s))
	}
	return New(reference.Domain(named), reference.Path(named))
}

// tagPattern is distribution/reference's tag grammar, anchored.
var tagPattern = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)

// ValidTag reports whether tag is a tag in the reference grammar (at most
// 128 characters of letters, digits, '_', '.', '-', not starting with '.'
// or '-').
func ValidTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return invalidf("invalid tag %s", quote(tag))
	}
	return nil
}

// quote quotes s for an error message, cut to 200 bytes.
func quote(s string) string {
	if len(s) > 200 {
		return strconv.Quote(s[:200]) + "..."
	}
	return strconv.Quote(s)
}
