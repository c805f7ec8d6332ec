package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr"
)

// checkECR asks ECR for a token for host through the token engine, with a
// throw-away cache so that it really calls AWS, and with the per-registry
// settings (profile, role_arn) the credential helper uses.
func checkECR(ctx context.Context, cfg *config.Config, host string, budget time.Duration) Result {
	if _, err := ecr.ParseHost(host); err != nil {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("%q: %v", host, err), Fix: "name an ECR registry host: ACCOUNT.dkr.ecr.REGION.amazonaws.com or public.ecr.aws"}
	}
	dir, err := os.MkdirTemp("", "tollgate-doctor-")
	if err != nil {
		return Result{Status: StatusFail, Detail: "cannot create a temporary cache: " + err.Error(), Fix: "check $TMPDIR"}
	}
	defer os.RemoveAll(dir)
	opts := ecr.Options{CacheDir: dir, RetryBudget: budget}
	if cfg != nil {
		opts.Registries = cfg.ECR.Registries
	}
	e, err := ecr.NewEngine(opts)
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "fix the ecr.registries section of the config file"}
	}
	tok, err := e.Token(ctx, host)
	if err != nil {
		var te *ecr.Error
		if errors.As(err, &te) {
			detail := fmt.Sprintf("GetAuthorizationToken: %v", te.Kind)
			if te.Source != "" {
				detail += " (credentials: " + te.Source + ")"
			}
			if te.Reason != "" {
				detail += ": " + te.Reason
			}
			return Result{Status: StatusFail, Detail: detail, Fix: te.Fix}
		}
		if ctx.Err() != nil {
			return Result{Status: StatusFail, Detail: "GetAuthorizationToken did not answer in time", Fix: "check network access to the ECR API endpoint of this region"}
		}
		return Result{Status: StatusFail, Detail: "GetAuthorizationToken: " + err.Error(), Fix: "see the aws-credentials and aws-identity checks"}
	}
	who := tok.Identity
	if who == "" {
		who = "this host's credentials"
	}
	detail := fmt.Sprintf("GetAuthorizationToken works for %s; a token minted now is valid until %s", who, tok.ExpiresAt.UTC().Format(time.RFC3339))
	return Result{Status: StatusOK, Detail: detail + "; " + cachedToken(ctx, cfg, host)}
}

// cachedToken says, without any network call, what the helper's own token
// cache holds for host.
func cachedToken(ctx context.Context, cfg *config.Config, host string) string {
	opts := ecr.Options{CacheDir: cacheDirOf(cfg)}
	if cfg != nil {
		opts.Registries = cfg.ECR.Registries
	}
	e, err := ecr.NewEngine(opts)
	if err != nil {
		return "the helper's cache cannot be read: " + err.Error()
	}
	st, err := e.Status(ctx, host)
	switch {
	case err != nil:
		return "the helper's cache cannot be read: " + err.Error()
	case st.Problem != "":
		return "the helper's cache file " + st.File + " is not usable (" + st.Problem + "); the next pull mints a new token"
	case !st.Cached:
		return "the helper's cache holds no token yet (the first pull mints one)"
	case !st.ExpiresAt.After(time.Now()):
		return "the helper's cached token expired at " + st.ExpiresAt.UTC().Format(time.RFC3339) + "; the next pull mints a new one"
	}
	return fmt.Sprintf("the helper's cache holds a token for %s valid until %s", st.Identity, st.ExpiresAt.UTC().Format(time.RFC3339))
}
