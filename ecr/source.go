package ecr

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
)

// source says where credentials for a registry will come from. It is worked
// out from local configuration only (environment variables and the shared
// config files), never by resolving credentials, so that a warm lookup can
// tell sources apart without a network call. Nothing in it is secret.
type source struct {
	// key is the stable fingerprint cache entries are bound to.
	key string
	// label names the source to humans in messages and logs.
	label string
	// imdsDisabled is set when the chain would end at the instance role but
	// AWS_EC2_METADATA_DISABLED=true turns it off: there are no credentials.
	imdsDisabled bool
	// profile and roleARN are the per-registry settings to apply at mint time.
	profile string
	roleARN string
}

// Environment variables that pick the endpoints a token comes from; they
// are part of the fingerprint so that a token from one endpoint (a test
// server, a VPC endpoint) is never served for another.
var endpointEnv = []string{
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_ECR_PUBLIC",
	"AWS_ENDPOINT_URL_STS", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
}

// resolveSource mirrors the order of the aws-sdk-go-v2 default credential
// chain (config.LoadDefaultConfig): an explicitly chosen profile, then static
// keys in the environment, then web identity from the environment, then the
// shared config profile (AWS_PROFILE, or default), then container
// credentials, then the instance role. A per-registry role_arn is assumed on
// top of whichever of these applies.
func resolveSource(ctx context.Context, profile, roleARN string) (source, error) {
	var (
		s   source
		err error
	)
	switch {
	case profile != "":
		s, err = profileSource(ctx, profile, true)
	case os.Getenv("AWS_ACCESS_KEY_ID") != "" && os.Getenv("AWS_SECRET_ACCESS_KEY") != "":
		// The access key id is an identifier, not a secret; the secret key
		// and session token are never read here.
		id := os.Getenv("AWS_ACCESS_KEY_ID")
		s = source{key: "env-keys:" + id, label: "environment key " + id}
	case os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "":
		s = source{
			key:   "web-identity:" + os.Getenv("AWS_ROLE_ARN") + "|" + os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE"),
			label: "web identity " + os.Getenv("AWS_ROLE_ARN"),
		}
	default:
		name := os.Getenv("AWS_PROFILE")
		if name == "" {
			name = os.Getenv("AWS_DEFAULT_PROFILE")
		}
		explicit := name != ""
		if !explicit {
			name = "default"
		}
		s, err = profileSource(ctx, name, explicit)
	}
	if err != nil {
		return source{}, err
	}
	s.profile = profile
	if roleARN != "" {
		s.key = "assume:" + roleARN + "<-" + s.key
		s.label = "role " + roleARN + " assumed with " + s.label
		s.roleARN = roleARN
	}
	for _, v := range endpointEnv {
		if val := os.Getenv(v); val != "" {
			s.key += "|" + v + "=" + val
		}
	}
	return s, nil
}

// sharedFiles returns the shared config and credentials files the SDK reads.
func sharedFiles() (cfgFiles, credFiles []string) {
	cfgFiles = []string{config.DefaultSharedConfigFilename()}
	if f := os.Getenv("AWS_CONFIG_FILE"); f != "" {
		cfgFiles = []string{f}
	}
	credFiles = []string{config.DefaultSharedCredentialsFilename()}
	if f := os.Getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		credFiles = []string{f}
	}
	return cfgFiles, credFiles
}

// profileSource describes a shared-config profile. A profile that does not
// exist is an error when it was named (explicit), and otherwise means the
// chain continues with container credentials and the instance role.
func profileSource(ctx context.Context, name string, explicit bool) (source, error) {
	cfgFiles, credFiles := sharedFiles()
	sc, err := config.LoadSharedConfigProfile(ctx, name, func(o *config.LoadSharedConfigOptions) {
		o.ConfigFiles = cfgFiles
		o.CredentialsFiles = credFiles
	})
	var notExist config.SharedConfigProfileNotExistError
	switch {
	case err == nil:
	case errors.As(err, &notExist) && !explicit:
		return fallbackSource(), nil
	case errors.As(err, &notExist):
		return source{}, &Error{Kind: ErrNoCredentials, Source: "profile " + name,
			Reason: "profile " + name + " not found in " + strings.Join(append(cfgFiles, credFiles...), " or "),
			Fix:    "add the profile, or unset AWS_PROFILE / fix the profile named in the tollgate config", Err: err}
	default:
		return source{}, &Error{Kind: ErrNoCredentials, Source: "profile " + name,
			Reason: "cannot read the shared AWS config: " + innermost(err),
			Fix:    "fix the file named in the message", Err: err}
	}
	s := describeProfile(&sc, 0)
	s.key = "profile:" + name + "|" + strings.Join(cfgFiles, ",") + "|" + strings.Join(credFiles, ",") + "|" + s.key
	if s.label == "" {
		s.label = "profile " + name
	}
	return s, nil
}

// describeProfile renders the non-secret parts of a profile that decide
// which identity it yields, following the SDK's resolveCredsFromProfile, as
// a source whose key is that description.
func describeProfile(sc *config.SharedConfig, depth int) source {
	if depth > 8 { // the SDK rejects source_profile cycles; be safe anyway
		return source{key: "loop"}
	}
	var (
		desc         string
		label        string
		imdsDisabled bool
	)
	switch {
	case sc.Source != nil:
		inner := describeProfile(sc.Source, depth+1)
		desc, imdsDisabled = "source("+sc.SourceProfileName+":"+inner.key+")", inner.imdsDisabled
	case sc.Credentials.HasKeys():
		desc = "keys:" + sc.Credentials.AccessKeyID
	case sc.CredentialSource != "":
		desc = "credential_source:" + sc.CredentialSource
		switch sc.CredentialSource {
		case "Environment":
			desc += ":" + os.Getenv("AWS_ACCESS_KEY_ID")
		case "EcsContainer":
			desc += ":" + containerURI()
		case "Ec2InstanceMetadata":
			desc += ":" + os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
		}
	case sc.WebIdentityTokenFile != "":
		desc = "web_identity:" + sc.WebIdentityTokenFile
	case sc.SSOSession != nil || sc.SSOStartURL != "" || sc.SSOAccountID != "":
		session := sc.SSOStartURL
		if sc.SSOSession != nil {
			session = sc.SSOSession.Name + "@" + sc.SSOSession.SSOStartURL
		}
		desc = "sso:" + session + "|" + sc.SSOAccountID + "|" + sc.SSORoleName
	case sc.LoginSession != "":
		desc = "login:" + sc.LoginSession
	case sc.CredentialProcess != "":
		// The command line may carry secrets; the profile name identifies it.
		desc = "credential_process:" + sc.Profile
	default:
		fb := fallbackSource()
		// A profile without credentials (region only, say): the chain
		// goes on to the container or instance role, and says so.
		desc, label, imdsDisabled = fb.key, fb.label, fb.imdsDisabled
	}
	if sc.RoleARN != "" {
		desc = "role:" + sc.RoleARN + "<-" + desc
		label = ""
	}
	return source{key: desc, label: label, imdsDisabled: imdsDisabled}
}

func containerURI() string {
	if p := os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); p != "" {
		return "relative:" + p
	}
	return os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
}

// fallbackSource is the end of the chain: container credentials (ECS, EKS
// pod identity) or the EC2 instance role. The instance role is keyed by the
// role as such, not by its rotating access keys, so rotation keeps the cache.
func fallbackSource() source {
	if uri := containerURI(); uri != "" {
		return source{key: "container:" + uri, label: "container credentials"}
	}
	if strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		return source{key: "none", label: "none (AWS_EC2_METADATA_DISABLED=true)", imdsDisabled: true}
	}
	return source{
		key:   "instance-role:" + os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
		label: "EC2 instance role",
	}
}
