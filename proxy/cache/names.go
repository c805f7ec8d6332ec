package cache

import (
	"fmt"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/allowlist/name"

	// Register the hashes go-digest knows so sha256 and sha512 digests verify.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// scope is one upstream repository, the unit that content is linked to,
// by its canonical name.
type scope = name.Repository

// newScope accepts host and repo when they are a canonical repository name
// (as routing makes it, name.New): then they are safe as path components.
func newScope(host, repo string) (scope, error) {
	n, err := name.New(host, repo)
	if err != nil {
		return scope{}, fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	if n.Host != host || n.Path != repo {
		return scope{}, fmt.Errorf("%w: %s/%s is not a canonical repository name (it is %s)", ErrInvalidName, host, repo, n)
	}
	return n, nil
}

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrInvalidName, d, err)
	}
	return nil
}

func checkTag(tag string) error {
	if err := name.ValidTag(tag); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
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
	return filepath.Join(c.dir, "repos", s.Host, filepath.FromSlash(s.Path))
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
