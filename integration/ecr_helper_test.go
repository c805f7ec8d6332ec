package integration

// End-to-end tests of docker-credential-tollgate for ECR hosts: the real
// binary, run as docker runs it, against wire-level fake AWS endpoints.
//
// needs: nothing beyond Go: the AWS endpoints are integration/fakeaws, in process.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

const (
	itUserKeyA    = "AKIAITUSERA00000001"
	itUserSecretA = "it/secret/a+0000000000000000000000000000"
	itUserARNA    = "arn:aws:iam::111111111111:user/ci-a"
	itUserKeyB    = "AKIAITUSERB00000002"
	itUserSecretB = "it/secret/b+0000000000000000000000000000"
	itUserARNB    = "arn:aws:iam::222222222222:user/ci-b"
	itRoleARN     = "arn:aws:iam::333333333333:role/ci-worker"

	itPrivateHost = "111111111111.dkr.ecr.us-west-2.amazonaws.com"
	itPublicHost  = "public.ecr.aws"
)

func TestECRHelperPrivateAndPublic(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)

	r := e.mustGet(itPrivateHost, itUserARNA, creds...)
	if r.creds.ServerURL != itPrivateHost {
		t.Errorf("ServerURL = %q, want %q", r.creds.ServerURL, itPrivateHost)
	}
	if info, _ := e.aws.TokenInfo(r.creds.Secret); info.Public || info.Region != "us-west-2" {
		t.Errorf("private host got a token for %+v, want ECR in us-west-2", info)
	}

	r = e.mustGet(itPublicHost, itUserARNA, creds...)
	if info, _ := e.aws.TokenInfo(r.creds.Secret); !info.Public || info.Region != "us-east-1" {
		t.Errorf("public.ecr.aws got a token for %+v, want ECR Public (us-east-1)", info)
	}
	if n := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Errorf("ECR GetAuthorizationToken calls = %d, want 1 (%s)", n, e.aws)
	}
	if n := e.aws.Calls(fakeaws.APIECRPublicGetAuthorizationToken); n != 1 {
		t.Errorf("ECR Public GetAuthorizationToken calls = %d, want 1 (%s)", n, e.aws)
	}

	// Hosts that only look like ECR are not minted for.
	e.aws.ResetCalls()
	for _, host := range []string{"111111111111.dkr.ecr.us-west-2.amazonaws.com.evil.example", "registry.example.com"} {
		r := e.get(host, creds...)
		if r.code == 0 {
			t.Errorf("get %s succeeded: %s", host, r)
		}
		if !strings.Contains(r.stdout, "credentials not found") {
			t.Errorf("get %s: want the protocol's not-found answer, got %s", host, r)
		}
	}
	if n := e.aws.Calls(""); n != 0 {
		t.Errorf("non-ECR hosts made AWS calls: %s", e.aws)
	}
}

func TestECRHelperColdConcurrentMintsOnce(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)

	const n = 50
	results := make([]helperResult, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		// Several accounts' registries in one region: one token serves them all.
		host := fmt.Sprintf("%012d.dkr.ecr.eu-central-1.amazonaws.com", 100000000000+i%5)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = e.get(host, creds...)
		}()
	}
	close(start)
	wg.Wait()

	secrets := map[string]int{}
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("process %d failed: %s", i, r)
			continue
		}
		if arn, ok := e.aws.CheckToken(r.creds.Username, r.creds.Secret); !ok || arn != itUserARNA {
			t.Errorf("process %d: not a live token for %s", i, itUserARNA)
		}
		secrets[r.creds.Secret]++
	}
	if calls := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); calls != 1 {
		t.Errorf("%d cold processes made %d GetAuthorizationToken calls, want 1 (%s)", n, calls, e.aws)
	}
	if len(secrets) != 1 {
		t.Errorf("%d processes got %d different tokens, want 1", n, len(secrets))
	}
	t.Logf("%d cold gets: %s", n, e.aws)
}

func TestECRHelperWarmGetMakesNoCalls(t *testing.T) {
	t.Run("static credentials", func(t *testing.T) {
		e := newECRHelperEnv(t, fakeaws.Options{})
		creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
		cold := e.mustGet(itPrivateHost, itUserARNA, creds...)
		e.aws.ResetCalls()
		// Another registry of the same region shares the token.
		warm := e.mustGet("999999999999.dkr.ecr.us-west-2.amazonaws.com", itUserARNA, creds...)
		if n := e.aws.Calls(""); n != 0 {
			t.Errorf("warm get made %d calls to ECR, STS or IMDS: %s", n, e.aws)
		}
		if warm.creds.Secret != cold.creds.Secret {
			t.Error("warm get returned a different token")
		}
	})
	t.Run("instance role", func(t *testing.T) {
		e := newECRHelperEnv(t, fakeaws.Options{})
		e.aws.SetInstanceRole("ci-worker", itRoleARN)
		cold := e.mustGet(itPrivateHost, e.aws.InstanceCallerARN())
		if e.aws.Calls("imds") == 0 {
			t.Fatalf("cold get with no static credentials did not ask IMDS: %s", e.aws)
		}
		e.aws.ResetCalls()
		warm := e.mustGet(itPrivateHost, e.aws.InstanceCallerARN())
		if n := e.aws.Calls(""); n != 0 {
			t.Errorf("warm get made %d calls to ECR, STS or IMDS: %s", n, e.aws)
		}
		if warm.creds.Secret != cold.creds.Secret {
			t.Error("warm get returned a different token")
		}
	})
}

func TestECRHelperThrottledTwiceThenSuccess(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 2})
	e.mustGet(itPrivateHost, itUserARNA, creds...)
	if n := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 3 {
		t.Errorf("GetAuthorizationToken calls = %d, want 3 (two throttled, one served): %s", n, e.aws)
	}
}

// oneLineError returns the reason a failed get gives docker: the protocol
// prints it on stdout.
func oneLineError(t *testing.T, r helperResult) string {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("get succeeded, want a failure: %s", r)
	}
	msg := strings.TrimSpace(r.stdout)
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("want exactly one line of error for docker on stdout: %s", r)
	}
	if strings.Contains(strings.ToLower(msg), "credentials not found") {
		t.Errorf("a real failure is disguised as not-found: %s", r)
	}
	return msg
}

func TestECRHelperIMDSDown(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	e.aws.SetInstanceRole("ci-worker", itRoleARN)
	e.aws.CloseIMDS()
	start := time.Now()
	r := e.get(itPrivateHost) // no static credentials: only IMDS could serve
	msg := oneLineError(t, r)
	low := strings.ToLower(msg)
	if !strings.Contains(low, "imds") && !strings.Contains(low, "metadata") {
		t.Errorf("error does not say the instance metadata service is unreachable: %q", msg)
	}
	if n := e.aws.Calls("ecr"); n != 0 {
		t.Errorf("ECR was called without credentials: %s", e.aws)
	}
	t.Logf("IMDS down: failed in %v with %q", time.Since(start).Round(time.Millisecond), msg)
}

func TestECRHelperAccessDenied(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	msg := oneLineError(t, e.get(itPrivateHost, creds...))
	low := strings.ToLower(msg)
	if !strings.Contains(low, "denied") && !strings.Contains(low, "not authorized") {
		t.Errorf("error does not say access was denied: %q", msg)
	}
	if strings.Contains(low, "imds") || strings.Contains(low, "metadata") {
		t.Errorf("access denied is reported as an IMDS problem: %q", msg)
	}
}

func TestECRHelperExpiredCachedTokenIsReplaced(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
	first := e.mustGet(itPrivateHost, itUserARNA, creds...)
	// Later: the cached token has less than the default 1h refresh margin
	// left.
	e.ageCachedTokens(time.Now().Add(30 * time.Minute))
	second := e.mustGet(itPrivateHost, itUserARNA, creds...)
	if second.creds.Secret == first.creds.Secret {
		t.Error("a token with less than the refresh margin left was served from the cache")
	}
	if n := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 2 {
		t.Errorf("GetAuthorizationToken calls = %d, want 2: %s", n, e.aws)
	}
	third := e.mustGet(itPrivateHost, itUserARNA, creds...)
	if third.creds.Secret != second.creds.Secret || e.aws.Calls(fakeaws.APIECRGetAuthorizationToken) != 2 {
		t.Errorf("the fresh token was not cached: %s", e.aws)
	}
}

func TestECRHelperTwoIdentitiesTwoTokens(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	a := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
	b := e.addUser(itUserKeyB, itUserSecretB, itUserARNB)

	ra := e.mustGet(itPrivateHost, itUserARNA, a...)
	rb := e.mustGet(itPrivateHost, itUserARNB, b...)
	if ra.creds.Secret == rb.creds.Secret {
		t.Fatal("two identities got the same token")
	}
	e.aws.ResetCalls()
	if again := e.mustGet(itPrivateHost, itUserARNA, a...); again.creds.Secret != ra.creds.Secret {
		t.Error("the first identity's cached token was lost when the second minted")
	}
	if again := e.mustGet(itPrivateHost, itUserARNB, b...); again.creds.Secret != rb.creds.Secret {
		t.Error("the second identity's cached token was not reused")
	}
	if n := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 0 {
		t.Errorf("warm gets of two identities minted again: %s", e.aws)
	}
}

func TestECRHelperInstanceRoleRotationKeepsCache(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	e.aws.SetInstanceRole("ci-worker", itRoleARN)
	roleARN := e.aws.InstanceCallerARN()
	first := e.mustGet(itPrivateHost, roleARN)

	oldKey := e.aws.InstanceAccessKeyID()
	if newKey := e.aws.RotateInstanceCredentials(); newKey == oldKey {
		t.Fatal("the fake did not rotate the instance key")
	}
	e.aws.ResetCalls()
	second := e.mustGet(itPrivateHost, roleARN)
	if second.creds.Secret != first.creds.Secret {
		t.Error("rotating the instance role's access key threw the cached token away")
	}
	if n := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 0 {
		t.Errorf("rotation caused a new mint: %s", e.aws)
	}

	// A different credential source on the same host never gets the role's token.
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
	user := e.mustGet(itPrivateHost, itUserARNA, creds...)
	if user.creds.Secret == first.creds.Secret {
		t.Error("static user credentials were served the instance role's token")
	}
}

func TestECRHelperTokenNeverLogged(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
	logFile := filepath.Join(e.home, "helper.log")
	debug := append([]string{"TOLLGATE_LOG_LEVEL=debug"}, creds...)

	// Debug logging on stderr: get checks every run's stderr for tokens.
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 1})
	cold := e.mustGet(itPrivateHost, itUserARNA, debug...)
	if strings.TrimSpace(cold.stderr) == "" {
		t.Fatal("debug logging wrote nothing on a cold, throttled get: the leak check would prove nothing")
	}
	e.mustGet(itPrivateHost, itUserARNA, debug...)
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	e.get("222222222222.dkr.ecr.eu-west-1.amazonaws.com", debug...)

	// The same to a log file.
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{})
	e.mustGet("111111111111.dkr.ecr.ap-south-1.amazonaws.com", itUserARNA, append(debug, "TOLLGATE_LOG_FILE="+logFile)...)
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	if len(data) == 0 {
		t.Fatal("debug log file is empty")
	}
	for _, p := range e.aws.MintedPasswords() {
		if strings.Contains(string(data), p) {
			t.Error("a registry token appears in the log file")
		}
	}
	if strings.Contains(string(data), itUserSecretA) || strings.Contains(cold.stderr, itUserSecretA) {
		t.Error("the AWS secret key appears in the logs")
	}
}

func TestECRHelperServesCachedTokenDuringOutage(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := append(e.addUser(itUserKeyA, itUserSecretA, itUserARNA), "TOLLGATE_ECR_RETRY_BUDGET=1s")
	first := e.mustGet(itPrivateHost, itUserARNA, creds...)
	e.ageCachedTokens(time.Now().Add(30 * time.Minute)) // inside the 1h refresh margin, still valid

	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Fail: 1000})
	during := e.mustGet(itPrivateHost, itUserARNA, creds...)
	if during.creds.Secret != first.creds.Secret {
		t.Error("during an outage the helper did not serve the still-valid cached token")
	}
	if e.aws.Calls(fakeaws.APIECRGetAuthorizationToken) < 2 {
		t.Errorf("the helper did not try to refresh a token inside the margin: %s", e.aws)
	}

	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{})
	after := e.mustGet(itPrivateHost, itUserARNA, creds...)
	if after.creds.Secret == first.creds.Secret {
		t.Error("after the outage the helper kept the old token instead of minting")
	}
}

func TestECRHelperThrottledPastRetryBudget(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := append(e.addUser(itUserKeyA, itUserSecretA, itUserARNA), "TOLLGATE_ECR_RETRY_BUDGET=1s")
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 1000})
	start := time.Now()
	msg := oneLineError(t, e.get(itPrivateHost, creds...))
	if !strings.Contains(strings.ToLower(msg), "throttl") {
		t.Errorf("error does not say AWS throttled the call: %q", msg)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("gave up after %v with a 1s retry budget", took)
	}
	if n := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n < 2 {
		t.Errorf("no retry on throttling: %s", e.aws)
	}
}

func TestECRHelperCorruptCacheIsReplaced(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := e.addUser(itUserKeyA, itUserSecretA, itUserARNA)
	e.mustGet(itPrivateHost, itUserARNA, creds...)

	cacheDir := filepath.Join(e.home, "tollgate-cache")
	var entries []string
	err := filepath.WalkDir(cacheDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("cache directory %s has mode %v, want no group/other access", path, perm)
			}
		case strings.HasSuffix(path, ".json"):
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("cache file %s has mode %v, want 0600", path, perm)
			}
			entries = append(entries, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatalf("no token cache file under %s", cacheDir)
	}
	for _, p := range entries {
		if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.aws.ResetCalls()
	e.mustGet(itPrivateHost, itUserARNA, creds...)
	if n := e.aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Errorf("a corrupt cache file was not replaced by a fresh mint: %s", e.aws)
	}
	for _, p := range entries {
		if data, err := os.ReadFile(p); err == nil && string(data) == "{not json" {
			t.Errorf("corrupt cache file %s was left in place", p)
		}
	}
	e.aws.ResetCalls()
	e.mustGet(itPrivateHost, itUserARNA, creds...)
	if n := e.aws.Calls(""); n != 0 {
		t.Errorf("after replacing the corrupt file the next get was not warm: %s", e.aws)
	}
}

func TestECRHelperNoCredentials(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	start := time.Now()
	msg := oneLineError(t, e.get(itPrivateHost, "AWS_EC2_METADATA_DISABLED=true"))
	t.Logf("no credentials: failed in %v with %q", time.Since(start).Round(time.Millisecond), msg)
	low := strings.ToLower(msg)
	if !strings.Contains(low, "no aws credentials") && !strings.Contains(low, "no credentials") {
		t.Errorf("error does not say there are no AWS credentials: %q", msg)
	}
	if n := e.aws.Calls(""); n != 0 {
		t.Errorf("calls with IMDS disabled and no keys: %s", e.aws)
	}
}

func TestECRHelperExpiredTokenNeverServed(t *testing.T) {
	e := newECRHelperEnv(t, fakeaws.Options{})
	creds := append(e.addUser(itUserKeyA, itUserSecretA, itUserARNA), "TOLLGATE_ECR_RETRY_BUDGET=1s")
	first := e.mustGet(itPrivateHost, itUserARNA, creds...)
	e.ageCachedTokens(time.Now().Add(-time.Second)) // expired

	// Expired and ECR down: failing is right, serving the dead token is not.
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Fail: 1000})
	if r := e.get(itPrivateHost, creds...); r.code == 0 {
		t.Errorf("an expired cached token was served during an outage: %s", r)
	}
	e.aws.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{})
	second := e.mustGet(itPrivateHost, itUserARNA, creds...)
	if second.creds.Secret == first.creds.Secret {
		t.Error("an expired token was served")
	}
}
