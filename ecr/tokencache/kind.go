package tokencache

import (
	"errors"

	"github.com/spacelift-io/tollgate/ecr/ecrhost"
)

// The kinds of failure to get a token. Package ecr reports them (its
// Err* variables are these), Answer.Kind names them across the process
// boundary to docker-credential-tollgate, and MintError matches them again
// there, so errors.Is(err, ecr.ErrThrottled) holds on both sides.
var (
	// ErrNoCredentials: no source of the AWS default chain had credentials,
	// or the configured one is broken (missing profile, no instance role).
	ErrNoCredentials = errors.New("no AWS credentials found")
	// ErrIMDSUnreachable: the chain fell through to the EC2 instance role and
	// the instance metadata service did not answer.
	ErrIMDSUnreachable = errors.New("EC2 instance metadata service unreachable")
	// ErrAccessDenied: AWS refused the credentials or the call.
	ErrAccessDenied = errors.New("access denied")
	// ErrThrottled: AWS kept throttling past the retry budget.
	ErrThrottled = errors.New("throttled by AWS")
	// ErrUnavailable: the AWS API failed (5xx, timeout, connection error)
	// past the retry budget.
	ErrUnavailable = errors.New("AWS API unavailable")
	// ErrConfig: the engine's own settings for a registry are invalid.
	ErrConfig = errors.New("invalid ECR registry settings")
)

// kindNames name the kinds in Answer.Kind.
var kindNames = map[error]string{
	ErrNoCredentials:   "no-credentials",
	ErrIMDSUnreachable: "imds-unreachable",
	ErrAccessDenied:    "access-denied",
	ErrThrottled:       "throttled",
	ErrUnavailable:     "unavailable",
	ErrConfig:          "config",
	ecrhost.ErrNotECR:  "not-ecr",
}

// temporaryKinds are the kinds expected to pass on their own: AWS
// throttling, an outage of the AWS API or of the instance metadata service.
// Through them the engine serves a cached token that is still valid, and the
// proxy a cached tag. This table is the only list of them.
var temporaryKinds = map[error]struct{}{
	ErrThrottled:       {},
	ErrUnavailable:     {},
	ErrIMDSUnreachable: {},
}

// TemporaryKind reports whether kind (one of the Err* kinds) is temporary.
func TemporaryKind(kind error) bool {
	_, ok := temporaryKinds[kind]
	return ok
}

// KindName names err's kind for Answer.Kind: "other" when it has none.
func KindName(err error) string {
	for kind, name := range kindNames {
		if errors.Is(err, kind) {
			return name
		}
	}
	return "other"
}

// KindNamed returns the kind KindName calls name, or nil for "other" and
// names it does not know (a newer tollgate's).
func KindNamed(name string) error {
	for kind, n := range kindNames {
		if n == name {
			return kind
		}
	}
	return nil
}
