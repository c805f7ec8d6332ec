package cache

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	// Register the hashes go-digest knows so sha256 and sha512 digests verify.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// scope is one upstream repository: the unit that content is linked to.
type scope struct{ host, repo string }

func (s scope) String() string { return s.host + "/" + s.repo }

var (
	// One repository path component, as distribution/reference defines it.
	repoComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// A tag, as distribution/reference defines it.
	tagPattern = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	// A canonical registry host with an optional port; IPv6 literals in brackets.
	hostPattern = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$`)
)

// newScope validates host and repo so that they are safe as path components.
func newScope(host, repo string) (scope, error) {
	if !hostPattern.MatchString(host) {
		return scope{}, fmt.Errorf("%w: registry host %q (want a canonical lower-case host, optionally with :port)", ErrInvalidName, host)
	}
	if repo == "" || len(repo) > 255 {
		return scope{}, fmt.Errorf("%w: repository %q", ErrInvalidName, repo)
	}
	for _, c := range strings.Split(repo, "/") {
		if !repoComponent.MatchString(c) {
			return scope{}, fmt.Errorf("%w: repository %q (component %q)", ErrInvalidName, repo, c)
		}
	}
	return scope{host: host, repo: repo}, nil
}

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrInvalidName, d, err)
	}
	return nil
}

func checkTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return fmt.Errorf("%w: tag %q", ErrInvalidName, tag)
	}
	return nil
}

// Layout under Options.Dir:
//
//	lock                                   flock held while a Cache is open
//	tmp/                                   fills in progress; emptied by Open
//	blobs/<alg>/<hex[:2]>/<hex>            verified content (blobs and manifests)
//	repos/<host>/<repo>/_blobs/<alg>/<hex>     empty file: blob linked to the repository
//	repos/<host>/<repo>/_manifests/<alg>/<hex> manifest linked; content is its media type
//	repos/<host>/<repo>/_tags/<tag>        JSON tag record
//
// Repository components never start with "_", so the underscore directories
// cannot collide with a repository name.
func (c *Cache) blobPath(d digest.Digest) string {
	h := d.Encoded()
	return filepath.Join(c.dir, "blobs", string(d.Algorithm()), h[:2], h)
}

func (c *Cache) repoDir(s scope) string {
	return filepath.Join(c.dir, "repos", s.host, filepath.FromSlash(s.repo))
}

func (c *Cache) linkPath(s scope, k kind, d digest.Digest) string {
	return filepath.Join(c.repoDir(s), k.dir(), string(d.Algorithm()), d.Encoded())
}

func (c *Cache) tagPath(s scope, tag string) string {
	return filepath.Join(c.repoDir(s), "_tags", tag)
}

// kind says what a digest was linked as in a repository.
type kind uint8

const (
	kindBlob kind = iota
	kindManifest
)

func (k kind) dir() string {
	if k == kindManifest {
		return "_manifests"
	}
	return "_blobs"
}

func (k kind) String() string {
	if k == kindManifest {
		return "manifest"
	}
	return "blob"
}
