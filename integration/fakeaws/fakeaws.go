package fakeaws

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// API names accepted by Calls and Fail.
const (
	APIECRGetAuthorizationToken       = "ecr.GetAuthorizationToken"
	APIECRPublicGetAuthorizationToken = "ecrpublic.GetAuthorizationToken"
	APISTSGetCallerIdentity           = "sts.GetCallerIdentity"
	APISTSAssumeRole                  = "sts.AssumeRole"
	APIIMDSToken                      = "imds.token"       // PUT /latest/api/token
	APIIMDSRole                       = "imds.role"        // GET .../iam/security-credentials/ (role name)
	APIIMDSCredentials                = "imds.credentials" // GET .../iam/security-credentials/<role>
	APIIMDSRegion                     = "imds.region"      // GET .../placement/region
	APIIMDSIdentity                   = "imds.identity"    // GET /latest/dynamic/instance-identity/document
	APIIMDSOther                      = "imds.other"       // any other IMDS path
	// Requests to a handler wrapped by RegistryAuth, by outcome.
	APIRegistryAuthorized   = "registry.authorized"
	APIRegistryUnauthorized = "registry.unauthorized"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// TokenLifetime is how long minted registry tokens live (default 12h,
	// as ECR). SetTokenLifetime changes it later.
	TokenLifetime time.Duration
	// InstanceCredentialLifetime is how long instance role credentials handed
	// out by IMDS live before IMDS rotates them (default 6h).
	InstanceCredentialLifetime time.Duration
	// AssumeRoleLifetime is the default lifetime of AssumeRole credentials
	// when the request names no DurationSeconds (default 1h, as STS).
	AssumeRoleLifetime time.Duration
	// IMDSRegion is the region IMDS reports (default us-east-1).
	IMDSRegion string
	// InstanceID is the instance IMDS describes (default i-0123456789abcdef0).
	// It is also the session name of the instance role's assumed-role ARN.
	InstanceID string
	// EnvRegion, when set, is exported as AWS_REGION by Env. Leave it empty
	// to check that the code under test takes the region from elsewhere.
	EnvRegion string
	// MaxSkew is how far X-Amz-Date may be from the server's clock, either
	// way (default 5m, as AWS: "Signature expired: ... (... - 5 min.)").
	MaxSkew time.Duration
}

// Fault tells one API to misbehave. Counted faults are consumed in order:
// first the Throttle answers, then the Fail answers; Deny and Delay stay
// until the fault is replaced (Fail(api, Fault{}) clears everything).
type Fault struct {
	// Throttle answers the next Throttle calls with ThrottlingException
	// (HTTP 400; STS: Throttling; IMDS: 429).
	Throttle int
	// Fail answers the next Fail calls with an error: HTTP Status (default
	// 500) and Code (default ServerException for ECR, InternalFailure for STS).
	Fail   int
	Code   string
	Status int
	// Deny answers every call with AccessDeniedException (STS: AccessDenied;
	// IMDS: 403) naming the caller, as IAM does.
	Deny bool
	// Delay holds every answer back this long (or until the client hangs up).
	// On APIIMDSToken it is what an IMDS hop limit of 1 looks like from a
	// container: the token PUT is never answered, tokenless GETs get 401.
	Delay time.Duration
}

// Server is a running set of fake AWS endpoints, one loopback HTTP server
// per service.
type Server struct {
	IMDSURL, ECRURL, ECRPublicURL, STSURL string

	opts    Options
	dir     string // holds the empty AWS config and credentials files
	servers []*httptest.Server
	imds    *httptest.Server

	mu            sync.Mutex
	calls         map[string]int
	faults        map[string]*Fault
	creds         map[string]*credential // by access key ID
	role          *instanceRole
	imdsTokens    map[string]time.Time // IMDS session token -> expiry
	tokens        map[string]Minted    // registry token (password) -> mint record
	tokenLifetime time.Duration
}

// Minted describes a registry token the server handed out.
type Minted struct {
	ARN       string    // principal that called GetAuthorizationToken
	Account   string    // that principal's account
	Region    string    // region the call was signed for
	Public    bool      // minted by ECR Public
	ExpiresAt time.Time // as returned in expiresAt
}

// Start starts a Server on loopback ports and closes it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("fakeaws: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a Server on loopback ports; the caller must Close it. Tests use
// Start; New is for programs such as benchmarks.
func New(opts Options) (*Server, error) {
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 12 * time.Hour
	}
	if opts.InstanceCredentialLifetime <= 0 {
		opts.InstanceCredentialLifetime = 6 * time.Hour
	}
	if opts.AssumeRoleLifetime <= 0 {
		opts.AssumeRoleLifetime = time.Hour
	}
	if opts.IMDSRegion == "" {
		opts.IMDSRegion = "us-east-1"
	}
	if opts.InstanceID == "" {
		opts.InstanceID = "i-0123456789abcdef0"
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = 5 * time.Minute
	}
	dir, err := os.MkdirTemp("", "fakeaws-")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	s := &Server{
		opts:          opts,
		dir:           dir,
		calls:         map[string]int{},
		faults:        map[string]*Fault{},
		creds:         map[string]*credential{},
		imdsTokens:    map[string]time.Time{},
		tokens:        map[string]Minted{},
		tokenLifetime: opts.TokenLifetime,
	}
	start := func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Config.ReadHeaderTimeout = 10 * time.Second
		srv.Start()
		s.servers = append(s.servers, srv)
		return srv
	}
	s.imds = start(http.HandlerFunc(s.serveIMDS))
	s.IMDSURL = s.imds.URL
	s.ECRURL = start(s.apiHandler(serviceECR)).URL
	s.ECRPublicURL = start(s.apiHandler(serviceECRPublic)).URL
	s.STSURL = start(s.apiHandler(serviceSTS)).URL
	return s, nil
}

// Close stops every endpoint and removes the temporary files.
func (s *Server) Close() {
	for _, srv := range s.servers {
		srv.CloseClientConnections()
		srv.Close()
	}
	s.servers = nil
	_ = os.RemoveAll(s.dir)
}

// CloseIMDS stops the metadata endpoint only: connections to IMDSURL are
// refused from then on, as on a host whose IMDS is disabled or firewalled.
func (s *Server) CloseIMDS() {
	s.imds.CloseClientConnections()
	s.imds.Close()
}

// Env returns the environment a subprocess needs to reach these endpoints
// through the AWS SDK's standard settings, with empty shared config and
// credentials files so the host's own AWS configuration is never read.
// Callers add AWS_ACCESS_KEY_ID... (see UserEnv) or rely on IMDS.
func (s *Server) Env() []string {
	env := []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.IMDSURL,
		"AWS_ENDPOINT_URL_ECR=" + s.ECRURL,
		"AWS_ENDPOINT_URL_ECR_PUBLIC=" + s.ECRPublicURL,
		"AWS_ENDPOINT_URL_STS=" + s.STSURL,
		"AWS_CONFIG_FILE=" + filepath.Join(s.dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.dir, "credentials"),
	}
	if s.opts.EnvRegion != "" {
		env = append(env, "AWS_REGION="+s.opts.EnvRegion)
	}
	return env
}

// ClearEnv removes from the test process, for the test's duration, every
// variable whose name starts with AWS_ or TOLLGATE_, and points HOME at an
// empty directory: no setting of the host reaches the code under test.
func ClearEnv(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "TOLLGATE_") {
			t.Setenv(k, "") // restored after the test...
			os.Unsetenv(k)  // ...and unset, not empty, during it
		}
	}
	t.Setenv("HOME", t.TempDir())
}

// UseSharedConfig is ClearEnv for tests of the AWS settings alone, with no
// fake server: AWS_CONFIG_FILE holds content, the shared credentials file is
// absent, and the AWS endpoints and IMDS point at a closed loopback port, so
// a call that escapes fails at once instead of leaving the machine.
func UseSharedConfig(t testing.TB, content string) {
	t.Helper()
	ClearEnv(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
}

// UseEnv gives the test process the environment of a host whose only AWS is
// this fake: ClearEnv, then Env(), then extra (KEY=VALUE).
func (s *Server) UseEnv(t testing.TB, extra ...string) {
	t.Helper()
	ClearEnv(t)
	for _, kv := range append(s.Env(), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Environ returns os.Environ() without any AWS_* variable of the host,
// followed by Env() and extra: a complete environment for exec.Cmd.Env.
func (s *Server) Environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, s.Env()...)
	return append(env, extra...)
}

// UserEnv returns AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for a user
// added with AddUser. It panics on an unknown key: that is a test bug.
func (s *Server) UserEnv(accessKeyID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[accessKeyID]
	if !ok || c.sessionToken != "" {
		panic("fakeaws: UserEnv: no user with access key " + accessKeyID)
	}
	return []string{"AWS_ACCESS_KEY_ID=" + c.accessKeyID, "AWS_SECRET_ACCESS_KEY=" + c.secret}
}

// Calls returns how many requests reached an API, whatever their outcome
// (rejected signatures and injected faults included). api is one of the API*
// names; a bare prefix such as "imds" or "ecr" sums that service's APIs, and
// "" sums every AWS API (not the RegistryAuth counters, "registry.*").
func (s *Server) Calls(api string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.calls[api]; ok && strings.Contains(api, ".") {
		return n
	}
	total := 0
	for name, n := range s.calls {
		if (api == "" && !strings.HasPrefix(name, "registry.")) || strings.HasPrefix(name, api+".") {
			total += n
		}
	}
	return total
}

// CallCounts returns a copy of every non-zero counter, for failure messages.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// String renders the counters in a stable order, for failure messages.
func (s *Server) String() string {
	counts := s.CallCounts()
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%d", k, counts[k])
	}
	return "fakeaws calls{" + strings.Join(parts, " ") + "}"
}

// ResetCalls sets every counter back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

// Fail replaces the fault injected into api; Fault{} clears it.
func (s *Server) Fail(api string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Fault{}) {
		delete(s.faults, api)
		return
	}
	s.faults[api] = &f
}

// SetTokenLifetime changes the lifetime of registry tokens minted from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenLifetime = d
}

// CheckToken validates Basic credentials of an ECR-like registry: username
// "AWS" and a password this server minted that has not expired. It returns
// the ARN of the principal the token was minted for.
func (s *Server) CheckToken(username, password string) (arn string, ok bool) {
	m, ok := s.TokenInfo(password)
	if !ok || username != "AWS" || !time.Now().Before(m.ExpiresAt) {
		return "", false
	}
	return m.ARN, true
}

// TokenInfo returns what the server recorded when it minted password (the
// part after "AWS:" of the authorizationToken), expired or not.
func (s *Server) TokenInfo(password string) (Minted, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.tokens[password]
	return m, ok
}

// MintedPasswords returns every registry token password minted so far, for
// tests that check no token leaks into logs or error output.
func (s *Server) MintedPasswords() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tokens))
	for p := range s.tokens {
		out = append(out, p)
	}
	return out
}

// MintedTokens returns how many distinct registry tokens were minted.
func (s *Server) MintedTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

// count records a call and returns the fault to apply to it, if any, with
// its counted part already consumed: throttle or fail is set when this call
// must answer with that error.
func (s *Server) count(api string) (throttle, fail bool, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[api]++
	p := s.faults[api]
	if p == nil {
		return false, false, Fault{}
	}
	f = *p
	switch {
	case p.Throttle > 0:
		p.Throttle--
		throttle = true
	case p.Fail > 0:
		p.Fail--
		fail = true
	}
	return throttle, fail, f
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ClosedURL returns an http URL on loopback where nothing listens: a
// connection to it is refused. Use it for "endpoint down" tests.
func ClosedURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return "http://" + addr, nil
}
