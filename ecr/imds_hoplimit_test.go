package ecr

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

// TestIMDSHopLimitIsReportedWithTheFix: in a container behind a bridge on
// an instance whose IMDS hop limit is 1, the token PUT's answer never
// arrives while plain GETs are answered (401: IMDSv2 is required). The SDK
// gives up on the token, falls back to a tokenless GET and gets 401. The
// engine must say the instance role is unreachable, with the hop-limit fix,
// within a bounded time, and call nothing else.
func TestIMDSHopLimitIsReportedWithTheFix(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	s.Fail(fakeaws.APIIMDSToken, fakeaws.Fault{Delay: time.Hour}) // the answer is lost on the way
	e, _ := newTestEngine(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := e.Token(ctx, host1)
	if ctx.Err() != nil {
		t.Fatalf("still waiting for IMDS after a minute: %v", err)
	}
	if !errors.Is(err, ErrIMDSUnreachable) {
		t.Fatalf("err %v, want ErrIMDSUnreachable", err)
	}
	checkOneLine(t, err, "EC2 instance role", "hop limit")
	if s.Calls(fakeaws.APIIMDSToken) == 0 {
		t.Errorf("the token was never asked for: %s", s)
	}
	if n := s.Calls(fakeaws.APIIMDSCredentials) + s.Calls("ecr") + s.Calls("sts"); n != 0 {
		t.Errorf("calls past the failed instance role lookup: %s", s)
	}
}
