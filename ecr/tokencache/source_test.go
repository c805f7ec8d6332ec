package tokencache

import (
	"os"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/ecr/ecrhost"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

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
	seen := map[string]string{}
	check := func(name string, env map[string]string, profile, role string) Source {
		t.Helper()
		fakeaws.UseSharedConfig(t, sharedConfig)
		for k, v := range env {
			t.Setenv(k, v)
		}
		s := ResolveSource(profile, role)
		for _, secret := range []string{"TOPSECRET", "sessiontoken", "envsecret"} {
			if strings.Contains(s.Key, secret) || strings.Contains(s.Label, secret) {
				t.Fatalf("%s: fingerprint %q holds a secret", name, s.Key)
			}
		}
		if prev, dup := seen[s.Key]; dup {
			t.Fatalf("%s and %s share fingerprint %q", name, prev, s.Key)
		}
		seen[s.Key] = name
		// Stable: the same configuration gives the same key.
		again := ResolveSource(profile, role)
		if again.Key != s.Key {
			t.Fatalf("%s: unstable fingerprint", name)
		}
		return s
	}
	def := check("default profile", nil, "", "")
	if !strings.HasPrefix(def.Key, "profile:default|") {
		t.Errorf("default profile: %q", def.Key)
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
	fakeaws.UseSharedConfig(t, sharedConfig)
	t.Setenv("AWS_PROFILE", "keys")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENV0000000000003")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	if s := ResolveSource("", ""); !strings.HasPrefix(s.Key, "env-keys:AKIAENV0000000000003") {
		t.Errorf("env keys should win over AWS_PROFILE: %q", s.Key)
	}
	// A per-registry profile wins over env keys.
	if s := ResolveSource("keys", ""); !strings.HasPrefix(s.Key, "profile:keys|") {
		t.Errorf("per-registry profile should win: %q", s.Key)
	}
}

func TestSourceFollowsSharedFileEdits(t *testing.T) {
	fakeaws.UseSharedConfig(t, sharedConfig)
	t.Setenv("AWS_PROFILE", "keys")
	before := ResolveSource("", "")
	if again := ResolveSource("", ""); again.Key != before.Key {
		t.Fatal("unstable")
	}
	cfg := os.Getenv("AWS_CONFIG_FILE")
	if err := os.WriteFile(cfg, []byte(sharedConfig+"\n[profile extra]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if after := ResolveSource("", ""); after.Key == before.Key {
		t.Fatal("an edited shared config kept its fingerprint")
	}
	// No shared files at all: labelled by where the chain ends.
	fakeaws.UseSharedConfig(t, "")
	os.Remove(os.Getenv("AWS_CONFIG_FILE"))
	if s := ResolveSource("", ""); s.Label != "EC2 instance role" {
		t.Errorf("label %q", s.Label)
	}
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")
	if s := ResolveSource("", ""); s.Label != "container credentials" {
		t.Errorf("label %q", s.Label)
	}
}

func TestScopeFileNames(t *testing.T) {
	r, _ := ecrhost.Parse("111111111111.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
	a := ScopeOf(r, Source{Key: "env-keys:AKIA1"})
	b := ScopeOf(r, Source{Key: "env-keys:AKIA2"})
	if a.ID() == b.ID() {
		t.Fatal("two sources share a file")
	}
	if !strings.HasPrefix(a.ID(), "aws-us-gov_us-gov-west-1_fips_") || strings.Contains(a.ID(), "AKIA") {
		t.Fatalf("file name %q", a.ID())
	}
	r2, _ := ecrhost.Parse("222222222222.dkr-ecr-fips.us-gov-west-1.on.aws")
	if ScopeOf(r2, Source{Key: "env-keys:AKIA1"}).ID() != a.ID() {
		t.Fatal("two accounts (and the dual-stack host) of one region and FIPS flavour should share a token")
	}
}
