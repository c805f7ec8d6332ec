package tokencache

import (
	"time"

	"github.com/spacelift-io/tollgate/ecr/ecrhost"
)

// Token is a registry login minted by ECR.
type Token struct {
	Username  string
	Password  string
	ExpiresAt time.Time
	Registry  ecrhost.Registry
	// Identity is the ARN the credentials resolved to when the token was
	// minted; empty if STS could not say.
	Identity string
	// Stale is set when the token is inside the refresh margin and was
	// served only because minting a new one failed (throttling, outage).
	Stale bool
}

// Token returns the entry as a token for reg.
func (e *Entry) Token(reg ecrhost.Registry, stale bool) Token {
	return Token{Username: e.Username, Password: e.Password, ExpiresAt: e.ExpiresAt,
		Registry: reg, Identity: e.Identity, Stale: stale}
}
