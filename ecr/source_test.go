package ecr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cleanAWSEnv clears every AWS_* variable and points the shared files at
// a config file with the given content.
func cleanAWSEnv(t *testing.T, sharedConfig string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	cfg := filepath.Join(dir, "config")
	if err := os.WriteFile(cfg, []byte(sharedConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
}

const sharedConfig = `
[default]
region = us-east-1

[profile keys]
aws_access_key_id = AKIAKEYS000000000001
aws_secret_access_key = TOPSECRETKEY

[profile assumer]
source_profile = keys
role_arn = arn:aws:iam::111111111111:role/deployer

[profile assumer2]
source_profile = keys
role_arn = arn:aws:iam::111111111111:role/other

[profile proc]
credential_process = /usr/bin/get-creds --token TOPSECRETARG

[profile sso]
sso_session = corp
sso_account_id = 111111111111
sso_role_name = Dev

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1

[profile webid]
web_identity_token_file = /var/run/token
role_arn = arn:aws:iam::111111111111:role/web

[profile imds]
credential_source = Ec2InstanceMetadata
role_arn = arn:aws:iam::111111111111:role/from-imds
`

func TestSourceFingerprints(t *testing.T) {
	ctx := context.Background()
	seen := map[string]string{}
	check := func(name string, env map[string]string, profile, role string) source {
		t.Helper()
		cleanAWSEnv(t, sharedConfig)
		for k, v := range env {
			t.Setenv(k, v)
		}
		s, err := resolveSource(ctx, profile, role)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, secret := range []string{"TOPSECRET", "sessiontoken", "envsecret"} {
			if strings.Contains(s.key, secret) || strings.Contains(s.label, secret) {
				t.Fatalf("%s: fingerprint %q holds a secret", name, s.key)
			}
		}
		if prev, dup := seen[s.key]; dup {
			t.Fatalf("%s and %s share fingerprint %q", name, prev, s.key)
		}
		seen[s.key] = name
		// Stable: the same configuration gives the same key.
		again, _ := resolveSource(ctx, profile, role)
		if again.key != s.key {
			t.Fatalf("%s: unstable fingerprint", name)
		}
		return s
	}
	inst := check("instance role", nil, "", "")
	if !strings.HasPrefix(inst.key, "profile:default") || !strings.Contains(inst.key, "instance-role") {
		t.Errorf("default profile without credentials should end at the instance role: %q", inst.key)
	}
	check("instance role at another IMDS", map[string]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}, "", "")
	check("env keys", map[string]string{"AWS_ACCESS_KEY_ID": "AKIAENV0000000000001", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_SESSION_TOKEN": "sessiontoken"}, "", "")
	check("env keys 2", map[string]string{"AWS_ACCESS_KEY_ID": "AKIAENV0000000000002", "AWS_SECRET_ACCESS_KEY": "envsecret"}, "", "")
	check("env keys + role", map[string]string{"AWS_ACCESS_KEY_ID": "AKIAENV0000000000002", "AWS_SECRET_ACCESS_KEY": "envsecret"}, "", "arn:aws:iam::222222222222:role/x")
	check("web identity env", map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_ROLE_ARN": "arn:aws:iam::1:role/a"}, "", "")
	check("container", map[string]string{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"}, "", "")
	check("pod identity", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"}, "", "")
	for _, p := range []string{"keys", "assumer", "assumer2", "proc", "sso", "webid", "imds"} {
		check("AWS_PROFILE="+p, map[string]string{"AWS_PROFILE": p}, "", "")
	}
	check("per-registry profile", nil, "assumer", "")
	check("endpoint override", map[string]string{"AWS_ENDPOINT_URL_ECR": "http://127.0.0.1:1"}, "", "")

	// Env keys win over AWS_PROFILE, as in the SDK.
	cleanAWSEnv(t, sharedConfig)
	t.Setenv("AWS_PROFILE", "keys")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENV0000000000003")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	if s, _ := resolveSource(ctx, "", ""); !strings.HasPrefix(s.key, "env-keys:AKIAENV0000000000003") {
		t.Errorf("env keys should win over AWS_PROFILE: %q", s.key)
	}
	// A per-registry profile wins over env keys.
	if s, _ := resolveSource(ctx, "keys", ""); !strings.Contains(s.key, "AKIAKEYS000000000001") {
		t.Errorf("per-registry profile should win: %q", s.key)
	}
}

func TestSourceMissingProfile(t *testing.T) {
	cleanAWSEnv(t, sharedConfig)
	t.Setenv("AWS_PROFILE", "nonesuch")
	_, err := resolveSource(context.Background(), "", "")
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "nonesuch") {
		t.Fatalf("err %v", err)
	}
	// No default profile at all: not an error, the chain goes on.
	cleanAWSEnv(t, "")
	if s, err := resolveSource(context.Background(), "", ""); err != nil || !strings.HasPrefix(s.key, "instance-role") {
		t.Fatalf("%q %v", s.key, err)
	}
}

func TestScopeFileNames(t *testing.T) {
	r, _ := ParseHost("111111111111.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
	a := scopeOf(r, source{key: "env-keys:AKIA1"})
	b := scopeOf(r, source{key: "env-keys:AKIA2"})
	if a.id() == b.id() {
		t.Fatal("two sources share a file")
	}
	if !strings.HasPrefix(a.id(), "aws-us-gov_us-gov-west-1_fips_") || strings.Contains(a.id(), "AKIA") {
		t.Fatalf("file name %q", a.id())
	}
	r2, _ := ParseHost("222222222222.dkr-ecr-fips.us-gov-west-1.on.aws")
	if scopeOf(r2, source{key: "env-keys:AKIA1"}).id() != a.id() {
		t.Fatal("two accounts (and the dual-stack host) of one region and FIPS flavour should share a token")
	}
}
