package refresh

import (
	"context"

	"github.com/spacelift-io/tollgate/ecr"
)

// Engine adapts the ECR token engine to Minter. Refreshing through the
// engine also warms its cache, which the credential helper reads.
type Engine struct{ *ecr.Engine }

var _ Minter = Engine{}

// Refresh returns the engine's token for host, minted anew only when the
// cached one is inside the refresh margin.
func (e Engine) Refresh(ctx context.Context, host string) (Token, error) {
	t, err := e.Engine.Refresh(ctx, host)
	if err != nil {
		return Token{}, err
	}
	return Token{Username: t.Username, Password: t.Password, ExpiresAt: t.ExpiresAt, Stale: t.Stale}, nil
}
