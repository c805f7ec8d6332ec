package integration

// The ECR token engine in process, against wire-level fake AWS: settings the
// helper binary does not expose on its command line (per-registry role_arn).
//
// needs: nothing beyond Go.

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr"
	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

func TestECREngineAssumesPerRegistryRole(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(itUserKeyA, itUserSecretA, itUserARNA)
	s.UseEnv(t, s.UserEnv(itUserKeyA)...)
	ctx := context.Background()

	const crossAccount = "444444444444.dkr.ecr.eu-west-1.amazonaws.com"
	const crossRole = "arn:aws:iam::444444444444:role/registry-reader"
	opts := ecr.Options{
		CacheDir:   t.TempDir(),
		Registries: map[string]config.ECRRegistry{crossAccount: {RoleARN: crossRole}},
	}
	engine, err := ecr.NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}

	tok, err := engine.Token(ctx, crossAccount)
	if err != nil {
		t.Fatalf("Token(%s): %v", crossAccount, err)
	}
	wantARN := "arn:aws:sts::444444444444:assumed-role/registry-reader/tollgate"
	if arn, ok := s.CheckToken(tok.Username, tok.Password); !ok || arn != wantARN {
		t.Fatalf("token minted for %q (live %v), want the assumed role %q (%s)", arn, ok, wantARN, s)
	}
	if n := s.Calls(fakeaws.APISTSAssumeRole); n != 1 {
		t.Errorf("AssumeRole calls = %d, want 1 (%s)", n, s)
	}

	// The same region without role_arn uses the caller's own identity: a
	// different token, never the role's.
	own, err := engine.Token(ctx, "111111111111.dkr.ecr.eu-west-1.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	if arn, _ := s.CheckToken(own.Username, own.Password); arn != itUserARNA || own.Password == tok.Password {
		t.Errorf("registry without role_arn got a token for %q", arn)
	}

	// A new engine (a new helper process) with the same settings is warm.
	s.ResetCalls()
	again, err := ecr.NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	warm, err := again.Token(ctx, crossAccount)
	if err != nil {
		t.Fatal(err)
	}
	if warm.Password != tok.Password || s.Calls("") != 0 {
		t.Errorf("second process: same token %v, calls %s", warm.Password == tok.Password, s)
	}

	// Denied AssumeRole is reported as access denied, with its own error.
	s.Fail(fakeaws.APISTSAssumeRole, fakeaws.Fault{Deny: true})
	denied, err := ecr.NewEngine(ecr.Options{CacheDir: t.TempDir(),
		Registries: map[string]config.ECRRegistry{crossAccount: {RoleARN: "arn:aws:iam::444444444444:role/other"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = denied.Token(ctx, crossAccount)
	if !errors.Is(err, ecr.ErrAccessDenied) || !strings.Contains(strings.ToLower(err.Error()), "denied") {
		t.Errorf("denied AssumeRole: err = %v, want ecr.ErrAccessDenied", err)
	}
}
