package credhelper

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spacelift-io/tollgate/internal/credsource"
)

// DefaultTimeout bounds one helper request when the caller gave no context
// deadline: long enough for a mint with retries and a wait on another
// process's lock, short enough that a wedged pull fails instead of hanging.
const DefaultTimeout = 60 * time.Second

// ECRUsername is the user name of every ECR login.
const ECRUsername = "AWS"

// Helper answers the docker credential helper protocol (store, get, erase,
// list) through credentials.Serve / credentials.HandleCommand.
type Helper struct {
	r   *Resolver
	ctx context.Context
}

var _ credentials.Helper = (*Helper)(nil)

// NewHelper returns a helper that resolves through r.
func NewHelper(r *Resolver) *Helper {
	return &Helper{r: r, ctx: context.Background()}
}

// WithContext returns a copy of h whose requests run under ctx (for
// cancellation on signals).
func (h *Helper) WithContext(ctx context.Context) *Helper {
	c := *h
	c.ctx = ctx
	return &c
}

func (h *Helper) context() (context.Context, context.CancelFunc) {
	if _, ok := h.ctx.Deadline(); ok {
		return context.WithCancel(h.ctx)
	}
	return context.WithTimeout(h.ctx, DefaultTimeout)
}

// Get returns the login for serverURL. Not found is the protocol's
// not-found error (docker then pulls anonymously); any other failure is
// returned as is, so the caller sees its one-line reason.
func (h *Helper) Get(serverURL string) (string, string, error) {
	ctx, cancel := h.context()
	defer cancel()
	user, secret, err := h.r.Credentials(ctx, serverURL)
	if credsource.IsNotFound(err) {
		return "", "", credentials.NewErrCredentialsNotFound()
	}
	return user, secret, err
}

// Add stores a login. For ECR hosts nothing is written: their tokens are
// minted on demand, so `docker login` to one succeeds and keeps nothing.
func (h *Helper) Add(c *credentials.Credentials) error {
	if IsECR(c.ServerURL) {
		return nil
	}
	if isNil(h.r.Logins) {
		return errNoStore
	}
	ctx, cancel := h.context()
	defer cancel()
	return h.r.Logins.Put(ctx, c.ServerURL, c.Username, c.Secret)
}

// Delete erases a login. For ECR hosts there is nothing stored to erase.
func (h *Helper) Delete(serverURL string) error {
	if IsECR(serverURL) {
		return nil
	}
	if isNil(h.r.Logins) {
		return credentials.NewErrCredentialsNotFound()
	}
	ctx, cancel := h.context()
	defer cancel()
	err := h.r.Logins.Erase(ctx, serverURL)
	if credsource.IsNotFound(err) {
		return credentials.NewErrCredentialsNotFound()
	}
	return err
}

// List returns the stored logins (server URL -> user name). It never calls
// AWS: ECR tokens are not stored, so they are not listed.
func (h *Helper) List() (map[string]string, error) {
	if isNil(h.r.Logins) {
		return map[string]string{}, nil
	}
	ctx, cancel := h.context()
	defer cancel()
	m, err := h.r.Logins.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list logins: %w", err)
	}
	if m == nil {
		m = map[string]string{}
	}
	return m, nil
}

var errNoStore = errors.New("no login store: set SPACELIFT_DOCKER_CONFIG_DIR to a docker config directory to store logins for registries other than ECR")
