package ecr

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/spacelift-io/tollgate/ecr/tokencache"
)

// sourceInfo is what the mint path knows about a credential source beyond
// its fingerprint, from the SDK's own reading of the shared config: a
// precise label, the remedy for its failures, and whether the chain ends at a
// disabled instance metadata service.
type sourceInfo struct {
	label        string
	fix          string
	imdsDisabled bool
	// instanceRole: the chain ends at the EC2 instance role (no profile
	// credentials, no container credentials, IMDS enabled).
	instanceRole bool
}

// describe follows the same chain as tokencache.ResolveSource, reading the
// profile with the SDK's parser. It runs only when minting. A named profile
// that does not exist is an error.
func describe(ctx context.Context, src tokencache.Source) (sourceInfo, error) {
	var (
		info sourceInfo
		err  error
	)
	switch {
	case src.Profile != "":
		info, err = describeProfile(ctx, src.Profile, true)
	case os.Getenv("AWS_ACCESS_KEY_ID") != "" && os.Getenv("AWS_SECRET_ACCESS_KEY") != "":
		info = sourceInfo{label: src.Label, fix: "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN"}
	case os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "":
		info = sourceInfo{label: src.Label, fix: "check AWS_WEB_IDENTITY_TOKEN_FILE is readable and AWS_ROLE_ARN trusts its issuer"}
	default:
		name := os.Getenv("AWS_PROFILE")
		if name == "" {
			name = os.Getenv("AWS_DEFAULT_PROFILE")
		}
		explicit := name != ""
		if !explicit {
			name = "default"
		}
		info, err = describeProfile(ctx, name, explicit)
	}
	if err != nil {
		return sourceInfo{}, err
	}
	if src.RoleARN != "" {
		info.label = "role " + src.RoleARN + " assumed with " + info.label
		info.instanceRole = false
	}
	return info, nil
}

func describeProfile(ctx context.Context, name string, explicit bool) (sourceInfo, error) {
	cfgFile, credFile := tokencache.SharedFiles()
	files := cfgFile + " or " + credFile
	sc, err := config.LoadSharedConfigProfile(ctx, name, func(o *config.LoadSharedConfigOptions) {
		o.ConfigFiles = []string{cfgFile}
		o.CredentialsFiles = []string{credFile}
	})
	var notExist config.SharedConfigProfileNotExistError
	switch {
	case err == nil:
	case errors.As(err, &notExist) && !explicit:
		return fallbackInfo(), nil
	case errors.As(err, &notExist):
		return sourceInfo{}, &Error{Kind: ErrNoCredentials, Source: "profile " + name,
			Reason: "profile " + name + " not found in " + files,
			Fix:    "add the profile, or unset AWS_PROFILE / fix the profile named in the tollgate config", Err: err}
	default:
		return sourceInfo{}, &Error{Kind: ErrNoCredentials, Source: "profile " + name,
			Reason: "cannot read the shared AWS config: " + innermost(err),
			Fix:    "fix the file named in the message", Err: err}
	}
	if fb, ok := profileFallsThrough(&sc, 0); ok {
		return fb, nil
	}
	return sourceInfo{
		label: "profile " + name,
		fix:   "check profile " + name + " in " + files + " (SSO: run aws sso login --profile " + name + ")",
	}, nil
}

// profileFallsThrough reports whether the profile (or the end of its
// source_profile chain) has no credentials of its own, so that the SDK goes on
// to container credentials or the instance role; it then describes those.
func profileFallsThrough(sc *config.SharedConfig, depth int) (sourceInfo, bool) {
	switch {
	case depth > 8:
		return sourceInfo{}, false
	case sc.Source != nil:
		fb, ok := profileFallsThrough(sc.Source, depth+1)
		return fb, ok && sc.RoleARN == ""
	case sc.RoleARN != "", sc.Credentials.HasKeys(), sc.CredentialSource != "", sc.WebIdentityTokenFile != "",
		sc.SSOSession != nil, sc.SSOStartURL != "", sc.SSOAccountID != "", sc.LoginSession != "", sc.CredentialProcess != "":
		return sourceInfo{}, false
	}
	return fallbackInfo(), true
}

func fallbackInfo() sourceInfo {
	switch {
	case os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != "" || os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI") != "":
		return sourceInfo{label: "container credentials"}
	case strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true"):
		return sourceInfo{label: "none (AWS_EC2_METADATA_DISABLED=true)", imdsDisabled: true}
	}
	return sourceInfo{label: "EC2 instance role", instanceRole: true}
}
