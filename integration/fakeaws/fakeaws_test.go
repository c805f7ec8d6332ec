package fakeaws_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

const (
	userKey    = "AKIAFAKEUSER0000001"
	userSecret = "secret/user/one+0000000000000000000000"
	userARN    = "arn:aws:iam::123456789012:user/ci"
	roleARN    = "arn:aws:iam::210987654321:role/worker"
)

// useEnv makes the process environment what a subprocess would get from
// s.Environ(extra...): no host AWS_* variable, the fake's, and extra.
func useEnv(t *testing.T, s *fakeaws.Server, extra ...string) {
	t.Helper()
	s.UseEnv(t, extra...)
}

// loadConfig loads the SDK's default configuration from the environment,
// as the product does.
func loadConfig(t *testing.T, region string) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(region))
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	return cfg
}

func staticConfig(region, key, secret, token string) aws.Config {
	return aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider(key, secret, token)}
}

func ecrClient(s *fakeaws.Server, cfg aws.Config) *ecr.Client {
	return ecr.NewFromConfig(cfg, func(o *ecr.Options) { o.BaseEndpoint = aws.String(s.ECRURL) })
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// decodeToken returns the password of an authorizationToken, checking its
// AWS:<password> shape.
func decodeToken(t *testing.T, tok *string) string {
	t.Helper()
	if tok == nil {
		t.Fatal("no authorizationToken")
	}
	raw, err := base64.StdEncoding.DecodeString(*tok)
	if err != nil {
		t.Fatalf("authorizationToken is not base64: %v", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user != "AWS" || pass == "" {
		t.Fatalf("authorizationToken decodes to %q..., want AWS:<token>", string(raw[:min(8, len(raw))]))
	}
	return pass
}

func TestECRGetAuthorizationTokenThroughEnv(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)
	useEnv(t, s, s.UserEnv(userKey)...)
	cfg := loadConfig(t, "us-west-2")

	// No BaseEndpoint: the SDK must find the fake through AWS_ENDPOINT_URL_ECR.
	client := ecr.NewFromConfig(cfg)
	before := time.Now()
	out, err := client.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	if len(out.AuthorizationData) != 1 {
		t.Fatalf("got %d authorizationData, want 1", len(out.AuthorizationData))
	}
	d := out.AuthorizationData[0]
	pass := decodeToken(t, d.AuthorizationToken)
	if got, want := aws.ToString(d.ProxyEndpoint), "https://123456789012.dkr.ecr.us-west-2.amazonaws.com"; got != want {
		t.Errorf("proxyEndpoint = %q, want %q", got, want)
	}
	if d.ExpiresAt == nil || d.ExpiresAt.Before(before.Add(12*time.Hour-time.Minute)) || d.ExpiresAt.After(time.Now().Add(12*time.Hour+time.Minute)) {
		t.Errorf("expiresAt = %v, want about 12h from now", d.ExpiresAt)
	}
	arn, ok := s.CheckToken("AWS", pass)
	if !ok || arn != userARN {
		t.Errorf("CheckToken = %q, %v; want %q, true", arn, ok, userARN)
	}
	if _, ok := s.CheckToken("AWS", pass+"x"); ok {
		t.Error("CheckToken accepted a token that was never minted")
	}
	if _, ok := s.CheckToken("root", pass); ok {
		t.Error("CheckToken accepted a user other than AWS")
	}
	info, _ := s.TokenInfo(pass)
	if info.Region != "us-west-2" || info.Public || info.Account != "123456789012" {
		t.Errorf("TokenInfo = %+v", info)
	}

	out2, err := client.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("second GetAuthorizationToken: %v", err)
	}
	if decodeToken(t, out2.AuthorizationData[0].AuthorizationToken) == pass {
		t.Error("two mints returned the same token")
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 2 {
		t.Errorf("Calls(ecr.GetAuthorizationToken) = %d, want 2 (%s)", n, s)
	}
	if n := s.Calls("imds"); n != 0 {
		t.Errorf("static credentials made %d IMDS calls", n)
	}
}

func TestECRPublicGetAuthorizationToken(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)
	useEnv(t, s, s.UserEnv(userKey)...)

	client := ecrpublic.NewFromConfig(loadConfig(t, "us-east-1"))
	out, err := client.GetAuthorizationToken(context.Background(), &ecrpublic.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	pass := decodeToken(t, out.AuthorizationData.AuthorizationToken)
	info, ok := s.TokenInfo(pass)
	if !ok || !info.Public || info.ARN != userARN || info.Region != "us-east-1" {
		t.Errorf("TokenInfo = %+v, %v", info, ok)
	}
	if n := s.Calls(fakeaws.APIECRPublicGetAuthorizationToken); n != 1 {
		t.Errorf("Calls = %d, want 1", n)
	}

	// ECR Public's API lives in us-east-1 only: a request signed for another
	// region is refused, as AWS does.
	other := ecrpublic.NewFromConfig(loadConfig(t, "eu-west-1"))
	_, err = other.GetAuthorizationToken(context.Background(), &ecrpublic.GetAuthorizationTokenInput{})
	if apiCode(err) != "InvalidSignatureException" {
		t.Errorf("eu-west-1 signed ECR Public call: err = %v, want InvalidSignatureException", err)
	}
}

func TestWrongSecretRejected(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)
	ctx := context.Background()

	good := staticConfig("eu-central-1", userKey, userSecret, "")
	if _, err := ecrClient(s, good).GetAuthorizationToken(ctx, nil); err != nil {
		t.Fatalf("good signature refused: %v", err)
	}

	for _, tc := range []struct {
		name, key, secret, token string
		ecrCode, stsCode         string
	}{
		{"wrong secret", userKey, userSecret + "x", "", "InvalidSignatureException", "SignatureDoesNotMatch"},
		{"unknown key", "AKIAUNKNOWN00000000", userSecret, "", "UnrecognizedClientException", "InvalidClientTokenId"},
		{"session token on user key", userKey, userSecret, "bogus", "UnrecognizedClientException", "InvalidClientTokenId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := staticConfig("eu-central-1", tc.key, tc.secret, tc.token)
			_, err := ecrClient(s, cfg).GetAuthorizationToken(ctx, nil)
			if apiCode(err) != tc.ecrCode {
				t.Errorf("ecr: err = %v, want %s", err, tc.ecrCode)
			}
			_, err = sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(s.STSURL) }).
				GetCallerIdentity(ctx, nil)
			if apiCode(err) != tc.stsCode {
				t.Errorf("sts: err = %v, want %s", err, tc.stsCode)
			}
		})
	}
	if n := s.MintedTokens(); n != 1 {
		t.Errorf("MintedTokens = %d, want 1 (rejected calls must not mint)", n)
	}
}

// signedRequest builds an ECR GetAuthorizationToken request signed by the
// SDK's own signer, for tampering tests.
func signedRequest(t *testing.T, url, service, region, secret string, body []byte) *http.Request {
	t.Helper()
	return signedRequestAt(t, url, service, region, secret, body, time.Now())
}

// signedRequestAt is signedRequest with the signing time (X-Amz-Date) given.
func signedRequestAt(t *testing.T, url, service, region, secret string, body []byte, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: userKey, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		t.Fatal(err)
	}
	return req
}

func doCode(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTamperedRequestRejected(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)

	if code, body := doCode(t, signedRequest(t, s.ECRURL, "ecr", "us-east-1", userSecret, []byte("{}"))); code != 200 {
		t.Fatalf("untampered request: %d %s", code, body)
	}

	req := signedRequest(t, s.ECRURL, "ecr", "us-east-1", userSecret, []byte("{}"))
	req.Body = io.NopCloser(strings.NewReader(`{"registryIds":["999999999999"]}`))
	req.ContentLength = -1
	if code, body := doCode(t, req); code != 400 || !strings.Contains(body, "InvalidSignatureException") {
		t.Errorf("tampered body: %d %s", code, body)
	}

	req = signedRequest(t, s.ECRURL, "ecr", "us-east-1", userSecret, []byte("{}"))
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories")
	if code, body := doCode(t, req); code != 400 || !strings.Contains(body, "InvalidSignatureException") {
		t.Errorf("tampered header: %d %s", code, body)
	}

	req = signedRequest(t, s.ECRURL, "ecr-public", "us-east-1", userSecret, []byte("{}"))
	if code, body := doCode(t, req); code != 400 || !strings.Contains(body, "scoped to correct service") {
		t.Errorf("wrong service scope: %d %s", code, body)
	}

	req, _ = http.NewRequest(http.MethodPost, s.ECRURL+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if code, body := doCode(t, req); code != 403 || !strings.Contains(body, "MissingAuthenticationTokenException") {
		t.Errorf("unsigned: %d %s", code, body)
	}
	if n := s.MintedTokens(); n != 1 {
		t.Errorf("MintedTokens = %d, want 1", n)
	}
}

// AWS refuses a request whose X-Amz-Date is more than 5 minutes from its
// clock, either way, so a replayed or badly clocked request fails; so must
// the fake, or tests would accept what AWS rejects.
func TestStaleOrFutureDateRejected(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)

	for _, tc := range []struct {
		name   string
		offset time.Duration
		want   string // "" = accepted
	}{
		{"4 minutes old", -4 * time.Minute, ""},
		{"4 minutes ahead", 4 * time.Minute, ""},
		{"6 minutes old", -6 * time.Minute, "Signature expired"},
		{"6 minutes ahead", 6 * time.Minute, "Signature not yet current"},
		{"14 minutes old", -14 * time.Minute, "Signature expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := signedRequestAt(t, s.ECRURL, "ecr", "us-east-1", userSecret, []byte("{}"), time.Now().Add(tc.offset))
			code, body := doCode(t, req)
			if tc.want == "" {
				if code != 200 {
					t.Errorf("ecr: %d %s, want 200", code, body)
				}
				return
			}
			if code != 400 || !strings.Contains(body, "InvalidSignatureException") || !strings.Contains(body, tc.want) ||
				!strings.Contains(body, "5 min.") {
				t.Errorf("ecr: %d %s, want 400 InvalidSignatureException %q", code, body, tc.want)
			}

			form := "Action=GetCallerIdentity&Version=2011-06-15"
			req, _ = http.NewRequest(http.MethodPost, s.STSURL+"/", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			sum := sha256.Sum256([]byte(form))
			creds := aws.Credentials{AccessKeyID: userKey, SecretAccessKey: userSecret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sts", "us-east-1", time.Now().Add(tc.offset)); err != nil {
				t.Fatal(err)
			}
			code, body = doCode(t, req)
			if code != 403 || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") || !strings.Contains(body, tc.want) {
				t.Errorf("sts: %d %s, want 403 SignatureDoesNotMatch %q", code, body, tc.want)
			}
		})
	}
	if n := s.MintedTokens(); n != 2 {
		t.Errorf("MintedTokens = %d, want 2 (only the fresh requests mint)", n)
	}
}

func TestSTSCallerIdentityAndAssumeRole(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)
	useEnv(t, s, s.UserEnv(userKey)...)
	ctx := context.Background()
	cfg := loadConfig(t, "us-east-2")

	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, nil)
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if aws.ToString(id.Arn) != userARN || aws.ToString(id.Account) != "123456789012" || aws.ToString(id.UserId) == "" {
		t.Errorf("GetCallerIdentity = %s %s %s", aws.ToString(id.Arn), aws.ToString(id.Account), aws.ToString(id.UserId))
	}

	// The SDK's own AssumeRole provider, as a per-registry role_arn would use.
	provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "tollgate"
	})
	roleCfg := cfg.Copy()
	roleCfg.Credentials = aws.NewCredentialsCache(provider)
	id, err = sts.NewFromConfig(roleCfg).GetCallerIdentity(ctx, nil)
	if err != nil {
		t.Fatalf("GetCallerIdentity as role: %v", err)
	}
	wantARN := "arn:aws:sts::210987654321:assumed-role/worker/tollgate"
	if aws.ToString(id.Arn) != wantARN {
		t.Errorf("assumed identity = %s, want %s", aws.ToString(id.Arn), wantARN)
	}
	out, err := ecr.NewFromConfig(roleCfg).GetAuthorizationToken(ctx, nil)
	if err != nil {
		t.Fatalf("GetAuthorizationToken as role: %v", err)
	}
	if arn, ok := s.CheckToken("AWS", decodeToken(t, out.AuthorizationData[0].AuthorizationToken)); !ok || arn != wantARN {
		t.Errorf("token minted for %q, want %q", arn, wantARN)
	}
	if got := aws.ToString(out.AuthorizationData[0].ProxyEndpoint); !strings.HasPrefix(got, "https://210987654321.dkr.ecr.us-east-2.") {
		t.Errorf("proxyEndpoint %q is not the role's account", got)
	}
	if n := s.Calls(fakeaws.APISTSAssumeRole); n != 1 {
		t.Errorf("AssumeRole calls = %d, want 1", n)
	}

	_, err = stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), "arn:aws:iam::1:role/x").Retrieve(ctx)
	if apiCode(err) != "ValidationError" {
		t.Errorf("bad role ARN: err = %v, want ValidationError", err)
	}
	s.Fail(fakeaws.APISTSAssumeRole, fakeaws.Fault{Deny: true})
	_, err = stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN).Retrieve(ctx)
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), userARN) {
		t.Errorf("denied AssumeRole: err = %v, want AccessDenied naming the caller", err)
	}
}

func TestThrottlingSurfacesAsThrottle(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)
	ctx := context.Background()
	client := ecrClient(s, staticConfig("us-east-1", userKey, userSecret, ""))

	// Twice, then success: the SDK's standard retryer (3 attempts) gets through.
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 2})
	if _, err := client.GetAuthorizationToken(ctx, nil); err != nil {
		t.Fatalf("throttled twice then success: %v", err)
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 3 {
		t.Errorf("calls = %d, want 3", n)
	}

	s.ResetCalls()
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 10})
	_, err := client.GetAuthorizationToken(ctx, nil, func(o *ecr.Options) {
		o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1)
	})
	if apiCode(err) != "ThrottlingException" {
		t.Fatalf("err = %v, want ThrottlingException", err)
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
		t.Errorf("the SDK does not classify %v as throttling", err)
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Errorf("calls = %d, want 1", n)
	}

	s.Fail(fakeaws.APISTSGetCallerIdentity, fakeaws.Fault{Throttle: 1})
	_, err = sts.NewFromConfig(staticConfig("us-east-1", userKey, userSecret, ""), func(o *sts.Options) {
		o.BaseEndpoint = aws.String(s.STSURL)
		o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1)
	}).GetCallerIdentity(ctx, nil)
	if apiCode(err) != "Throttling" || retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
		t.Errorf("sts throttle: err = %v, want Throttling", err)
	}
}

func TestFailDenyDelay(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)
	ctx := context.Background()
	client := ecrClient(s, staticConfig("us-east-1", userKey, userSecret, ""))
	once := func(o *ecr.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) }

	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Fail: 1})
	_, err := client.GetAuthorizationToken(ctx, nil, once)
	var se *ecrtypes.ServerException
	if !errors.As(err, &se) {
		t.Errorf("err = %v, want *types.ServerException", err)
	}
	if _, err := client.GetAuthorizationToken(ctx, nil, once); err != nil {
		t.Errorf("after the counted failure: %v", err)
	}

	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	_, err = client.GetAuthorizationToken(ctx, nil)
	if apiCode(err) != "AccessDeniedException" || !strings.Contains(err.Error(), userARN) ||
		!strings.Contains(err.Error(), "ecr:GetAuthorizationToken") {
		t.Errorf("deny: err = %v", err)
	}

	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Delay: 5 * time.Second})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = client.GetAuthorizationToken(short, nil, once)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delay: err = %v, want deadline exceeded", err)
	}

	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{})
	if _, err := client.GetAuthorizationToken(ctx, nil); err != nil {
		t.Errorf("after clearing faults: %v", err)
	}
}

func TestIMDSInstanceRoleCredentialsRotate(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.SetInstanceRole("worker", roleARN)
	useEnv(t, s) // no static keys: the default chain ends at IMDS
	ctx := context.Background()

	cfg := loadConfig(t, "us-east-1")
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("Retrieve from IMDS: %v", err)
	}
	first := s.InstanceAccessKeyID()
	if creds.AccessKeyID != first || !strings.HasPrefix(first, "ASIA") || creds.SessionToken == "" || !creds.CanExpire {
		t.Fatalf("IMDS credentials %s (token %v, expires %v), want temporary %s",
			creds.AccessKeyID, creds.SessionToken != "", creds.CanExpire, first)
	}
	if s.Calls(fakeaws.APIIMDSToken) == 0 || s.Calls(fakeaws.APIIMDSRole) == 0 || s.Calls(fakeaws.APIIMDSCredentials) == 0 {
		t.Errorf("IMDS calls: %s", s)
	}

	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, nil)
	if err != nil {
		t.Fatalf("GetCallerIdentity with instance credentials: %v", err)
	}
	want := "arn:aws:sts::210987654321:assumed-role/worker/i-0123456789abcdef0"
	if aws.ToString(id.Arn) != want || s.InstanceCallerARN() != want {
		t.Errorf("caller = %s (InstanceCallerARN %s), want %s", aws.ToString(id.Arn), s.InstanceCallerARN(), want)
	}

	second := s.RotateInstanceCredentials()
	if second == first {
		t.Fatal("rotation kept the access key")
	}
	creds2, err := loadConfig(t, "us-east-1").Credentials.Retrieve(ctx)
	if err != nil || creds2.AccessKeyID != second {
		t.Fatalf("after rotation IMDS gave %s, %v; want %s", creds2.AccessKeyID, err, second)
	}
	// Both the old and the new keys are valid until they expire, and both
	// resolve to the same identity.
	for _, c := range []aws.Credentials{creds, creds2} {
		out, err := ecrClient(s, staticConfig("us-east-1", c.AccessKeyID, c.SecretAccessKey, c.SessionToken)).GetAuthorizationToken(ctx, nil)
		if err != nil {
			t.Fatalf("GetAuthorizationToken with %s: %v", c.AccessKeyID, err)
		}
		if arn, _ := s.CheckToken("AWS", decodeToken(t, out.AuthorizationData[0].AuthorizationToken)); arn != want {
			t.Errorf("token for %s minted for %q, want %q", c.AccessKeyID, arn, want)
		}
	}
	// A session token that does not belong to the key is refused.
	_, err = ecrClient(s, staticConfig("us-east-1", creds2.AccessKeyID, creds2.SecretAccessKey, creds.SessionToken)).GetAuthorizationToken(ctx, nil)
	if apiCode(err) != "UnrecognizedClientException" {
		t.Errorf("mismatched session token: err = %v", err)
	}
	// Nor are temporary keys without their session token, on either protocol.
	noToken := staticConfig("us-east-1", creds2.AccessKeyID, creds2.SecretAccessKey, "")
	_, err = ecrClient(s, noToken).GetAuthorizationToken(ctx, nil)
	if apiCode(err) != "UnrecognizedClientException" {
		t.Errorf("temporary key without its session token: err = %v", err)
	}
	_, err = sts.NewFromConfig(noToken, func(o *sts.Options) { o.BaseEndpoint = aws.String(s.STSURL) }).GetCallerIdentity(ctx, nil)
	if apiCode(err) != "InvalidClientTokenId" {
		t.Errorf("sts: temporary key without its session token: err = %v", err)
	}
}

func TestIMDSExpiryRotatesAndExpiredCredsRejected(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{InstanceCredentialLifetime: time.Second})
	s.SetInstanceRole("worker", roleARN)
	useEnv(t, s)
	ctx := context.Background()

	c1, err := loadConfig(t, "us-east-1").Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	_, err = ecrClient(s, staticConfig("us-east-1", c1.AccessKeyID, c1.SecretAccessKey, c1.SessionToken)).GetAuthorizationToken(ctx, nil)
	if apiCode(err) != "ExpiredTokenException" {
		t.Errorf("expired instance credentials: err = %v, want ExpiredTokenException", err)
	}
	_, err = sts.NewFromConfig(staticConfig("us-east-1", c1.AccessKeyID, c1.SecretAccessKey, c1.SessionToken), func(o *sts.Options) {
		o.BaseEndpoint = aws.String(s.STSURL)
	}).GetCallerIdentity(ctx, nil)
	if apiCode(err) != "ExpiredToken" {
		t.Errorf("expired instance credentials on sts: err = %v, want ExpiredToken", err)
	}
	c2, err := loadConfig(t, "us-east-1").Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c2.AccessKeyID == c1.AccessKeyID {
		t.Error("IMDS kept handing out expired credentials")
	}
}

func TestIMDSv2Rules(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{IMDSRegion: "ap-southeast-2"})
	s.SetInstanceRole("worker", roleARN)

	resp, err := http.Get(s.IMDSURL + "/latest/meta-data/iam/security-credentials/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without session token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPut, s.IMDSURL+"/latest/api/token", nil)
	if code, _ := doCode(t, req); code != http.StatusBadRequest {
		t.Errorf("PUT token without TTL: %d, want 400", code)
	}
	for _, ttl := range []string{"0", "21601", "x"} {
		req, _ = http.NewRequest(http.MethodPut, s.IMDSURL+"/latest/api/token", nil)
		req.Header.Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
		if code, _ := doCode(t, req); code != http.StatusBadRequest {
			t.Errorf("PUT token with TTL %q: %d, want 400", ttl, code)
		}
	}
	// A token request that went through a proxy is refused, as IMDS does.
	req, _ = http.NewRequest(http.MethodPut, s.IMDSURL+"/latest/api/token", nil)
	req.Header.Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "60")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	if code, _ := doCode(t, req); code != http.StatusForbidden {
		t.Errorf("PUT token with X-Forwarded-For: %d, want 403", code)
	}
	// A token is good for its TTL, which the answer echoes, and no longer;
	// a token IMDS never issued is refused.
	req, _ = http.NewRequest(http.MethodPut, s.IMDSURL+"/latest/api/token", nil)
	req.Header.Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "1")
	asked := time.Now() // the token expires between asked+1s and issued+1s
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tokenBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(tokenBody) == 0 || resp.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") != "1" {
		t.Fatalf("PUT token with TTL 1: %d, TTL header %q, %d bytes", resp.StatusCode, resp.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"), len(tokenBody))
	}
	issued := time.Now()
	getWith := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, s.IMDSURL+"/latest/meta-data/iam/security-credentials/", nil)
		req.Header.Set("X-Aws-Ec2-Metadata-Token", token)
		code, _ := doCode(t, req)
		return code
	}
	if code := getWith(string(tokenBody)); code != http.StatusOK && time.Since(asked) < time.Second {
		t.Errorf("GET with a fresh token: %d, want 200", code)
	}
	if code := getWith(string(tokenBody) + "x"); code != http.StatusUnauthorized {
		t.Errorf("GET with a token IMDS did not issue: %d, want 401", code)
	}
	time.Sleep(time.Until(issued.Add(1100 * time.Millisecond)))
	if code := getWith(string(tokenBody)); code != http.StatusUnauthorized {
		t.Errorf("GET with a token past its TTL: %d, want 401", code)
	}

	client := imds.New(imds.Options{Endpoint: s.IMDSURL})
	region, err := client.GetRegion(context.Background(), nil)
	if err != nil || region.Region != "ap-southeast-2" {
		t.Errorf("GetRegion = %+v, %v", region, err)
	}
	doc, err := client.GetInstanceIdentityDocument(context.Background(), nil)
	if err != nil || doc.AccountID != "210987654321" || doc.Region != "ap-southeast-2" {
		t.Errorf("identity document = %+v, %v", doc, err)
	}

	s.CloseIMDS()
	if _, err := http.Get(s.IMDSURL + "/latest/api/token"); err == nil {
		t.Error("IMDS still answers after CloseIMDS")
	}
}

// TestTokenLifetime checks that a token lives exactly TokenLifetime: the
// expiresAt ECR returns, and CheckToken before and after that instant. The
// lifetime leaves a loaded machine time to check the fresh token; the
// expired check waits for the returned expiresAt itself, not a fixed sleep.
func TestTokenLifetime(t *testing.T) {
	const lifetime = 2 * time.Second
	s := fakeaws.Start(t, fakeaws.Options{TokenLifetime: lifetime})
	s.AddUser(userKey, userSecret, userARN)
	before := time.Now()
	out, err := ecrClient(s, staticConfig("us-east-1", userKey, userSecret, "")).GetAuthorizationToken(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	pass := decodeToken(t, out.AuthorizationData[0].AuthorizationToken)
	expires := *out.AuthorizationData[0].ExpiresAt
	// expiresAt is mint time + lifetime, to the millisecond (it travels as
	// float epoch seconds, so allow a millisecond either way).
	if expires.Before(before.Add(lifetime).Add(-time.Millisecond)) || expires.After(after.Add(lifetime).Add(time.Millisecond)) {
		t.Errorf("expiresAt %v, want %v after the call (made between %v and %v)", expires, lifetime, before, after)
	}
	if m, ok := s.TokenInfo(pass); !ok || m.ExpiresAt.Sub(expires).Abs() > time.Millisecond {
		t.Errorf("TokenInfo = %+v, %v; want ExpiresAt %v", m, ok, expires)
	}
	if time.Now().Before(expires) {
		if _, ok := s.CheckToken("AWS", pass); !ok && time.Now().Before(expires) {
			t.Error("fresh token refused")
		}
	}
	time.Sleep(time.Until(expires) + 10*time.Millisecond)
	if _, ok := s.CheckToken("AWS", pass); ok {
		t.Error("expired token accepted")
	}
}

func TestEnviron(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{EnvRegion: "eu-north-1"})
	t.Setenv("AWS_PROFILE", "host-profile")
	env := strings.Join(s.Environ("EXTRA=1"), "\n")
	if strings.Contains(env, "host-profile") {
		t.Error("Environ leaks the host's AWS_PROFILE")
	}
	for _, want := range []string{"AWS_ENDPOINT_URL_ECR=" + s.ECRURL, "AWS_ENDPOINT_URL_ECR_PUBLIC=" + s.ECRPublicURL,
		"AWS_ENDPOINT_URL_STS=" + s.STSURL, "AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.IMDSURL,
		"AWS_REGION=eu-north-1", "AWS_CONFIG_FILE=", "AWS_SHARED_CREDENTIALS_FILE=", "EXTRA=1"} {
		if !strings.Contains(env, want) {
			t.Errorf("Environ lacks %s", want)
		}
	}
	for _, u := range []string{s.ECRURL, s.ECRPublicURL, s.STSURL, s.IMDSURL} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("endpoint %s is not on loopback", u)
		}
	}
}

func TestRegistryAuth(t *testing.T) {
	s := fakeaws.Start(t, fakeaws.Options{})
	s.AddUser(userKey, userSecret, userARN)
	ctx := context.Background()
	mint := func(region string) string {
		out, err := ecrClient(s, staticConfig(region, userKey, userSecret, "")).GetAuthorizationToken(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return decodeToken(t, out.AuthorizationData[0].AuthorizationToken)
	}
	good, otherRegion := mint("us-east-1"), mint("eu-west-1")
	pub, err := ecrpublic.NewFromConfig(staticConfig("us-east-1", userKey, userSecret, ""), func(o *ecrpublic.Options) {
		o.BaseEndpoint = aws.String(s.ECRPublicURL)
	}).GetAuthorizationToken(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	public := decodeToken(t, pub.AuthorizationData.AuthorizationToken)

	reg := httptest.NewServer(s.RegistryAuth("us-east-1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "{}")
	})))
	defer reg.Close()
	try := func(user, pass string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, reg.URL+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := try("AWS", good); resp.StatusCode != http.StatusOK {
		t.Errorf("good token: %d", resp.StatusCode)
	}
	for name, c := range map[string][2]string{
		"no credentials": {"", ""}, "other region": {"AWS", otherRegion}, "ECR Public token": {"AWS", public},
		"wrong user": {"admin", good}, "unknown token": {"AWS", good + "x"},
	} {
		resp := try(c[0], c[1])
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), `Basic realm="https://`) {
			t.Errorf("%s: %d %q, want 401 with ECR's Basic challenge", name, resp.StatusCode, resp.Header.Get("Www-Authenticate"))
		}
	}
	if s.Calls(fakeaws.APIRegistryAuthorized) != 1 || s.Calls(fakeaws.APIRegistryUnauthorized) != 5 {
		t.Errorf("registry counters: %s", s)
	}
}
