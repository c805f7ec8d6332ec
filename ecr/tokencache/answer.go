package tokencache

import (
	"time"

	"github.com/spacelift-io/tollgate/internal/credsource"
)

// Answer is what `tollgate ecr-token --json` prints: the token, or the one
// line reason it could not be had. docker-credential-tollgate runs it on a
// cache miss, so that its own warm path needs no AWS SDK.
type Answer struct {
	Username  string    `json:"username,omitempty"`
	Password  string    `json:"password,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Identity  string    `json:"identity,omitempty"`
	Stale     bool      `json:"stale,omitempty"`
	// Error is the one-line message (never a secret); Kind names its kind:
	// no-credentials, imds-unreachable, access-denied, throttled,
	// unavailable, config, not-ecr or other.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

// MintError is a failure reported by the minting process: its one-line
// message and the name of its kind (Answer.Kind). It keeps the engine's
// error contract across the process boundary: errors.Is matches the kind
// (errors.Is(err, ecr.ErrThrottled)), and Temporary says what the engine's
// own error would.
type MintError struct {
	Kind    string
	Message string
}

var _ credsource.TemporaryError = (*MintError)(nil)

func (e *MintError) Error() string { return e.Message }

// Is reports whether target is the error's kind.
func (e *MintError) Is(target error) bool {
	kind := KindNamed(e.Kind)
	return kind != nil && kind == target
}

// Temporary reports a kind that is expected to pass on its own (see
// temporaryKinds).
func (e *MintError) Temporary() bool { return TemporaryKind(KindNamed(e.Kind)) }
