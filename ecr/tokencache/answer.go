package tokencache

import "time"

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

// MintError is a failure reported by the minting process.
type MintError struct {
	Kind    string
	Message string
}

func (e *MintError) Error() string { return e.Message }
