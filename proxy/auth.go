package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	gocache "github.com/patrickmn/go-cache"

	"github.com/spacelift-io/tollgate/internal/credsource"
)

// Credentials looks up the login for an upstream registry host (canonical,
// e.g. "docker.io" or an ECR host). credhelper.Resolver implements it: ECR
// tokens minted by the token engine, other logins from the config dir. A host
// without credentials answers an error marked with a NotFound() method
// (credsource.ErrNotFound, docker-credential-helpers' not-found error), and
// the proxy pulls anonymously. An error with Temporary() true (throttling,
// an AWS outage) lets a cached tag answer.
type Credentials interface {
	Credentials(ctx context.Context, host string) (username, secret string, err error)
}

// identityTokenUser is the user name docker configs use for an identity
// (OAuth refresh) token instead of a password.
const identityTokenUser = "<token>"

// credentialCacheTTL bounds how long a looked-up login is reused before the
// Credentials source is asked again. The source caches ECR tokens itself;
// this only keeps the per-request cost at a map lookup.
const credentialCacheTTL = time.Minute

// login is one looked-up credential; the zero value is anonymous.
type login struct {
	username, secret string
}

func (l login) anonymous() bool { return l.username == "" && l.secret == "" }

// fingerprint identifies the credential in cache keys without holding it.
func (l login) fingerprint() string {
	if l.anonymous() {
		return "anonymous"
	}
	sum := sha256.Sum256([]byte(l.username + "\x00" + l.secret))
	return hex.EncodeToString(sum[:8])
}

// authenticator turns a login into what go-containerregistry's transport
// needs.
func (l login) authenticator() authn.Authenticator {
	switch {
	case l.anonymous():
		return authn.Anonymous
	case l.username == identityTokenUser:
		return authn.FromConfig(authn.AuthConfig{IdentityToken: l.secret})
	default:
		return authn.FromConfig(authn.AuthConfig{Username: l.username, Password: l.secret})
	}
}

// String never shows the secret, so a login that ends up in a log line or
// an error message leaks nothing.
func (l login) String() string {
	if l.anonymous() {
		return "anonymous"
	}
	return "login(" + l.fingerprint() + ")"
}

// GoString keeps %#v as safe as %v.
func (l login) GoString() string { return l.String() }

// credentialStore caches lookups of a Credentials source per host.
type credentialStore struct {
	source Credentials
	public bool
	cache  *gocache.Cache
}

func newCredentialStore(source Credentials, public bool) *credentialStore {
	return &credentialStore{
		source: source,
		public: public,
		cache:  gocache.New(credentialCacheTTL, 5*time.Minute),
	}
}

// lookup returns the login to use for host: anonymous in public mode, when
// there is no source, or when the source has none for host.
func (s *credentialStore) lookup(ctx context.Context, host string) (login, error) {
	if s.public || s.source == nil {
		return login{}, nil
	}
	if v, ok := s.cache.Get(host); ok {
		return v.(login), nil
	}
	user, secret, err := s.source.Credentials(ctx, host)
	switch {
	case credsource.IsNotFound(err):
		user, secret = "", ""
	case err != nil:
		// The source's errors name the fix and never carry the secret.
		return login{}, &credentialError{host: host, err: err}
	}
	l := login{username: user, secret: secret}
	s.cache.SetDefault(host, l)
	return l, nil
}

// credentialError is a failure of the credential source for host (the ECR
// token engine, a delegated helper).
type credentialError struct {
	host string
	err  error
}

func (e *credentialError) Error() string { return "credentials for " + e.host + ": " + e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

// temporary reports whether the source says its failure will pass
// (throttling, an AWS outage), by the credsource contract.
func (e *credentialError) temporary() bool { return credsource.IsTemporary(e.err) }
