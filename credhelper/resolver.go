package credhelper

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/spacelift-io/tollgate/ecr/ecrhost"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/internal/credsource"
)

// LoginStore is what the resolver needs from the config-directory logins
// (SPACELIFT_DOCKER_CONFIG_DIR); dockerconfig.Store provides it. Get for a
// server without a login returns an error for which credsource.IsNotFound
// is true.
type LoginStore interface {
	Get(ctx context.Context, serverURL string) (username, secret string, err error)
	Put(ctx context.Context, serverURL, username, secret string) error
	Erase(ctx context.Context, serverURL string) error
	List(ctx context.Context) (map[string]string, error)
}

// TokenSource is what the resolver needs from the ECR token engine;
// *ecr.Engine provides it, and so does the helper binary's warm cache
// reader, which leaves minting to another process.
type TokenSource interface {
	Token(ctx context.Context, host string) (tokencache.Token, error)
}

// Resolver finds credentials for a registry: ECR hosts are minted by the
// token engine, every other host comes from the config-directory logins.
// Either field may be nil, and then that side has nothing.
type Resolver struct {
	ECR    TokenSource
	Logins LoginStore
	// Log receives warnings, such as an ECR Public pull falling back to
	// anonymous; nil discards them.
	Log *slog.Logger
}

// Credentials returns the login for serverURL (a host, host:port or URL).
// When no source has one, the error is credsource.ErrNotFound (test it with
// credsource.IsNotFound); any other error is a real failure (no AWS credentials, access denied, ...) whose
// message says what to do.
func (r *Resolver) Credentials(ctx context.Context, serverURL string) (username, secret string, err error) {
	if reg, perr := ecrhost.Parse(serverURL); perr == nil && !isNil(r.ECR) {
		tok, err := r.ECR.Token(ctx, serverURL)
		if err != nil && reg.Public && ctx.Err() == nil {
			// ECR Public serves every image anonymously too, with lower
			// rate limits: a host without usable AWS credentials still pulls.
			r.logger().Warn("no ECR Public token, pulling anonymously", "registry", reg.Host, "err", err.Error())
			return "", "", fmt.Errorf("%w: %w", credsource.ErrNotFound, err)
		}
		if err != nil {
			return "", "", err
		}
		return tok.Username, tok.Password, nil
	}
	if isNil(r.Logins) {
		return "", "", credsource.ErrNotFound
	}
	username, secret, err = r.Logins.Get(ctx, serverURL)
	if credsource.IsNotFound(err) {
		return "", "", credsource.ErrNotFound
	}
	return username, secret, err
}

// IsECR reports whether serverURL names an ECR registry, whose credentials
// are minted rather than stored.
func IsECR(serverURL string) bool {
	_, err := ecrhost.Parse(serverURL)
	return err == nil
}

// isNil is true for a nil interface and for an interface holding a nil
// pointer, so that Resolver{Logins: (*dockerconfig.Store)(nil)} means "no
// logins" rather than a crash.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

func (r *Resolver) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}
