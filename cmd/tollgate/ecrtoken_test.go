package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

func TestECRToken(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.UseEnv(t, "TOLLGATE_CACHE_DIR="+t.TempDir())
	s.SetInstanceRole("ci-worker", "arn:aws:iam::111111111111:role/ci-worker")
	const host = "111111111111.dkr.ecr.us-west-2.amazonaws.com"
	ctx := context.Background()

	var out, errb bytes.Buffer
	if code := runECRToken(ctx, []string{host}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	password := strings.TrimSpace(out.String())
	if arn, ok := s.CheckToken("AWS", password); !ok || arn != s.InstanceCallerARN() {
		t.Fatalf("printed %d bytes that are not a token of the instance role", len(password))
	}
	if !strings.Contains(errb.String(), s.InstanceCallerARN()) || strings.Contains(errb.String(), password) {
		t.Errorf("stderr %q", errb.String())
	}

	out.Reset()
	if code := runECRToken(ctx, []string{"--json", host}, &out, &errb); code != 0 {
		t.Fatal(code)
	}
	var a tokencache.Answer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil || a.Password != password || a.Identity != s.InstanceCallerARN() {
		t.Fatalf("answer %+v %v", a.Identity, err)
	}
	if n := s.Calls("ecr"); n != 1 {
		t.Fatalf("%d ECR calls, want 1 (second answer from the cache)", n)
	}

	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	out.Reset()
	if code := runECRToken(ctx, []string{"--json", "222222222222.dkr.ecr.eu-west-1.amazonaws.com"}, &out, &errb); code != 1 {
		t.Fatalf("denied: exit %d", code)
	}
	a = tokencache.Answer{}
	if err := json.Unmarshal(out.Bytes(), &a); err != nil || a.Kind != "access-denied" || !strings.HasPrefix(a.Error, "access denied") {
		t.Fatalf("answer %+v %v", a, err)
	}
	out.Reset()
	if code := runECRToken(ctx, []string{"--json", "ghcr.io"}, &out, &errb); code != 1 || !strings.Contains(out.String(), `"kind":"not-ecr"`) {
		t.Fatalf("not ECR: %d %s", code, out.String())
	}
	if code := runECRToken(ctx, nil, &out, &errb); code != 2 {
		t.Fatalf("no host: exit %d", code)
	}
}
