package ecr

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

const describeConfig = `
[default]
region = us-east-1

[profile sso]
sso_session = corp
sso_account_id = 111111111111
sso_role_name = Dev

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1
`

func mintErr(t *testing.T) error {
	t.Helper()
	e, err := NewEngine(Options{CacheDir: t.TempDir(), RetryBudget: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Token(context.Background(), "111111111111.dkr.ecr.us-east-1.amazonaws.com")
	return err
}

func TestBrokenProfileNamesTheFix(t *testing.T) {
	fakeaws.UseSharedConfig(t, describeConfig)
	t.Setenv("AWS_PROFILE", "sso")
	err := mintErr(t)
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err %v, want ErrNoCredentials", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "profile sso") || !strings.Contains(msg, "aws sso login --profile sso") {
		t.Fatalf("message %q does not name the profile's fix", msg)
	}
}

func TestMissingProfile(t *testing.T) {
	fakeaws.UseSharedConfig(t, describeConfig)
	t.Setenv("AWS_PROFILE", "nonesuch")
	err := mintErr(t)
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "profile nonesuch not found") {
		t.Fatalf("err %v", err)
	}
}

// A default profile with only a region falls through to the instance role,
// and the error says so rather than blaming the profile.
func TestProfileWithoutCredentialsIsTheInstanceRole(t *testing.T) {
	fakeaws.UseSharedConfig(t, describeConfig)
	err := mintErr(t)
	if !errors.Is(err, ErrIMDSUnreachable) || !strings.Contains(err.Error(), "EC2 instance role") {
		t.Fatalf("err %v", err)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	if err := mintErr(t); !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "AWS_EC2_METADATA_DISABLED") {
		t.Fatalf("err %v", err)
	}
}

func TestErrorTemporary(t *testing.T) {
	for kind, want := range map[error]bool{
		ErrThrottled: true, ErrUnavailable: true, ErrIMDSUnreachable: true,
		ErrAccessDenied: false, ErrNoCredentials: false, ErrConfig: false,
	} {
		err := error(&Error{Kind: kind, Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com"})
		var tmp interface{ Temporary() bool }
		if !errors.As(err, &tmp) || tmp.Temporary() != want {
			t.Errorf("%v: Temporary() = %v, want %v", kind, !want, want)
		}
	}
}
