package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spacelift-io/tollgate/ecr"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/internal/credsource"
)

// answer is a Credentials source that fails with err.
type answer struct{ err error }

func (a answer) Credentials(context.Context, string) (string, string, error) {
	return "", "", a.err
}

// TestCredentialLookupKeepsTheContract: a not-found answer (by its
// NotFound() marker) pulls anonymously; any other failure stops the pull,
// and is temporary exactly when the source says so.
func TestCredentialLookupKeepsTheContract(t *testing.T) {
	for name, c := range map[string]struct {
		err       error
		anonymous bool
		temporary bool
	}{
		"credsource not found":                {fmt.Errorf("ghcr.io: %w", credsource.ErrNotFound), true, false},
		"docker-credential-helpers not found": {credentials.NewErrCredentialsNotFound(), true, false},
		"ECR throttled":                       {&ecr.Error{Kind: ecr.ErrThrottled}, false, true},
		"ECR access denied":                   {&ecr.Error{Kind: ecr.ErrAccessDenied}, false, false},
		"helper process: unavailable":         {&tokencache.MintError{Kind: "unavailable", Message: "AWS API unavailable"}, false, true},
		"helper process: no credentials":      {&tokencache.MintError{Kind: "no-credentials", Message: "no AWS credentials found"}, false, false},
		"anything else":                       {errors.New("disk on fire"), false, false},
	} {
		l, err := newCredentialStore(answer{c.err}, false).lookup(context.Background(), testHost)
		if c.anonymous {
			if err != nil || !l.anonymous() {
				t.Errorf("%s: got %v, %v; want anonymous", name, l, err)
			}
			continue
		}
		var ce *credentialError
		if !errors.As(err, &ce) || !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, %v; want the source's error", name, l, err)
			continue
		}
		if ce.temporary() != c.temporary {
			t.Errorf("%s: temporary %v, want %v", name, ce.temporary(), c.temporary)
		}
	}
}
