package ecr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

const (
	host1     = "111111111111.dkr.ecr.us-west-2.amazonaws.com"
	host2     = "222222222222.dkr.ecr.us-west-2.amazonaws.com" // same region: same token
	hostOther = "111111111111.dkr.ecr.eu-central-1.amazonaws.com"
	roleARN   = "arn:aws:iam::111111111111:role/ci-worker"
	userARN   = "arn:aws:iam::111111111111:user/alice"
	bobARN    = "arn:aws:iam::111111111111:user/bob"
)

// awsEnv starts the fake AWS endpoints and points this process's AWS SDK at
// them through its standard environment variables, with every other AWS_*
// variable of the host cleared.
func awsEnv(t *testing.T, opts fakeaws.Options) *fakeaws.Server {
	t.Helper()
	s := fakeaws.Start(t, opts)
	s.UseEnv(t)
	// Shared config files of the test's own, which outlive the fake.
	dir := t.TempDir()
	for _, name := range []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(name, p)
	}
	return s
}

// useUser puts static user credentials in the environment.
func useUser(t *testing.T, s *fakeaws.Server, key, arn string) {
	t.Helper()
	s.AddUser(key, "secret-"+key, arn)
	for _, kv := range s.UserEnv(key) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// logBuffer collects the engine's log so tests can check it leaks no token.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestEngine(t *testing.T, dir string, mod func(*Options)) (*Engine, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts := Options{
		CacheDir:    dir,
		RetryBudget: 3 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, logs
}

// noSecrets fails if any token the fake minted appears in s.
func noSecrets(t *testing.T, s *fakeaws.Server, what, text string) {
	t.Helper()
	for _, p := range s.MintedPasswords() {
		if strings.Contains(text, p) {
			t.Fatalf("%s contains a minted token", what)
		}
	}
	if strings.Contains(text, "secret-") {
		t.Fatalf("%s contains a secret access key", what)
	}
}

func mustToken(t *testing.T, e *Engine, host string) Token {
	t.Helper()
	tok, err := e.Token(context.Background(), host)
	if err != nil {
		t.Fatalf("Token(%s): %v", host, err)
	}
	return tok
}

func TestInstanceRoleMintOnceThenWarm(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	e, logs := newTestEngine(t, dir, nil)

	tok := mustToken(t, e, host1)
	if tok.Username != "AWS" || tok.Password == "" {
		t.Fatalf("token %q/%d bytes", tok.Username, len(tok.Password))
	}
	if arn, ok := s.CheckToken(tok.Username, tok.Password); !ok || arn != s.InstanceCallerARN() {
		t.Fatalf("fake does not accept the token: %q %v", arn, ok)
	}
	if tok.Identity != s.InstanceCallerARN() {
		t.Errorf("identity %q, want %q", tok.Identity, s.InstanceCallerARN())
	}
	if time.Until(tok.ExpiresAt) < 11*time.Hour {
		t.Errorf("expires at %v", tok.ExpiresAt)
	}
	// Another account's registry in the same region shares the token.
	if tok2 := mustToken(t, e, "https://"+host2+"/v2/"); tok2.Password != tok.Password {
		t.Error("second account in the same region got another token")
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Fatalf("%d GetAuthorizationToken calls, want 1", n)
	}

	// A new engine (a new process) reads the disk cache: no call at all.
	s.ResetCalls()
	e2, _ := newTestEngine(t, dir, nil)
	if tok3 := mustToken(t, e2, host1); tok3.Password != tok.Password || tok3.Identity != tok.Identity {
		t.Error("disk cache not used")
	}
	if n := s.Calls(""); n != 0 {
		t.Fatalf("warm lookup made %d calls: %v", n, s.CallCounts())
	}

	// Another region is another token.
	if tok4 := mustToken(t, e2, hostOther); tok4.Password == tok.Password {
		t.Error("eu-central-1 got the us-west-2 token")
	}
	noSecrets(t, s, "log", logs.String())
}

func TestCacheFilesArePrivate(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := filepath.Join(t.TempDir(), "cache")
	e, _ := newTestEngine(t, dir, nil)
	mustToken(t, e, host1)
	ecrDir := filepath.Join(dir, "ecr")
	fi, err := os.Stat(ecrDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v %v", fi, err)
	}
	ents, _ := os.ReadDir(ecrDir)
	var files int
	for _, de := range ents {
		fi, _ := de.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", de.Name(), fi.Mode().Perm())
		}
		if strings.HasSuffix(de.Name(), ".json") {
			files++
		}
		if strings.Contains(de.Name(), "tmp") {
			t.Errorf("temporary file left: %s", de.Name())
		}
	}
	if files != 1 {
		t.Fatalf("%d cache files, want 1: %v", files, ents)
	}
}

func TestWarmGetNeedsNoNetwork(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	e, _ := newTestEngine(t, dir, nil)
	tok := mustToken(t, e, host1)
	// Every endpoint goes away: a warm lookup from a fresh process must not
	// notice.
	s.Close()
	e2, _ := newTestEngine(t, dir, nil)
	if got := mustToken(t, e2, host1); got.Password != tok.Password {
		t.Fatal("different token")
	}
}

// rewriteEntry edits the cached entry for host on disk.
func rewriteEntry(t *testing.T, e *Engine, host string, fn func(*tokencache.Entry)) string {
	t.Helper()
	st, err := e.Status(context.Background(), host)
	if err != nil || !st.Cached {
		t.Fatalf("no cached entry: %+v %v", st, err)
	}
	data, err := os.ReadFile(st.File)
	if err != nil {
		t.Fatal(err)
	}
	var ent tokencache.Entry
	if err := json.Unmarshal(data, &ent); err != nil {
		t.Fatal(err)
	}
	fn(&ent)
	data, _ = json.Marshal(ent)
	if err := os.WriteFile(st.File, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return st.File
}

func TestMarginAndExpiry(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	e, _ := newTestEngine(t, dir, nil)
	first := mustToken(t, e, host1)

	// 2h left: outside the 1h margin, served from disk by a new process.
	rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.ExpiresAt = time.Now().Add(2 * time.Hour) })
	s.ResetCalls()
	e2, _ := newTestEngine(t, dir, nil)
	if got := mustToken(t, e2, host1); got.Password != first.Password {
		t.Fatal("token with 2h left was not served")
	}
	if s.Calls("ecr") != 0 {
		t.Fatal("minted although the cached token had 2h left")
	}

	// 30m left: inside the margin, so a new one is minted.
	rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.ExpiresAt = time.Now().Add(30 * time.Minute) })
	e3, _ := newTestEngine(t, dir, nil)
	second := mustToken(t, e3, host1)
	if second.Password == first.Password || s.Calls(fakeaws.APIECRGetAuthorizationToken) != 1 {
		t.Fatal("token inside the margin was served")
	}

	// Expired: minted again, and a larger margin makes a fresh one stale.
	rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.ExpiresAt = time.Now().Add(-time.Minute) })
	e4, _ := newTestEngine(t, dir, nil)
	if third := mustToken(t, e4, host1); third.Password == second.Password {
		t.Fatal("expired token served")
	}
	e5, _ := newTestEngine(t, dir, func(o *Options) { o.RefreshMargin = 13 * time.Hour })
	mustToken(t, e5, host1)
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 3 {
		t.Fatalf("%d mints, want 3 (a 13h margin exceeds a 12h token)", n)
	}
}

func TestRefreshMintsOnlyInsideMargin(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	e, _ := newTestEngine(t, t.TempDir(), nil)
	ctx := context.Background()
	first, err := e.Refresh(ctx, host1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Refresh(ctx, host1)
	if err != nil || again.Password != first.Password {
		t.Fatalf("fresh token refreshed: %v", err)
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Fatalf("%d mints, want 1", n)
	}
	// Refresh reads the disk under the lock, not the in-process cache.
	rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.ExpiresAt = time.Now().Add(10 * time.Minute) })
	if _, err := e.Token(ctx, host1); err != nil {
		t.Fatal(err)
	}
	if s.Calls(fakeaws.APIECRGetAuthorizationToken) != 1 {
		t.Fatal("Token should have used the in-process copy")
	}
	third, err := e.Refresh(ctx, host1)
	if err != nil || third.Password == first.Password || s.Calls(fakeaws.APIECRGetAuthorizationToken) != 2 {
		t.Fatalf("Refresh inside the margin did not mint: %v", err)
	}
}

func TestCorruptAndForeignFilesAreReplaced(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	e, _ := newTestEngine(t, dir, nil)
	mustToken(t, e, host1)
	st, _ := e.Status(context.Background(), host1)

	for _, tc := range []struct {
		name  string
		write func(path string)
	}{
		{"garbage", func(p string) { os.WriteFile(p, []byte("{not json"), 0o600) }},
		{"empty", func(p string) { os.WriteFile(p, nil, 0o600) }},
		{"wrong version", func(p string) {
			rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.Version = 99 })
		}},
		{"no password", func(p string) { rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.Password = "" }) }},
		{"other source", func(p string) {
			rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.Source = "env-keys:AKIAOTHER" })
		}},
		{"world readable", func(p string) {
			os.Chmod(p, 0o644)
		}},
		{"symlink", func(p string) {
			target := filepath.Join(t.TempDir(), "elsewhere.json")
			data, _ := os.ReadFile(p)
			os.WriteFile(target, data, 0o600)
			os.Remove(p)
			os.Symlink(target, p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Make sure a valid entry is there, then spoil it.
			e0, _ := newTestEngine(t, dir, nil)
			mustToken(t, e0, host1)
			tc.write(st.File)
			before := s.Calls(fakeaws.APIECRGetAuthorizationToken)
			e1, logs := newTestEngine(t, dir, nil)
			tok := mustToken(t, e1, host1)
			if s.Calls(fakeaws.APIECRGetAuthorizationToken) != before+1 {
				t.Fatal("spoiled cache file was served instead of minting")
			}
			if _, ok := s.CheckToken(tok.Username, tok.Password); !ok {
				t.Fatal("served token is not one the fake minted")
			}
			if !strings.Contains(logs.String(), "replacing unusable token cache file") {
				t.Errorf("no warning about the spoiled file in %q", logs.String())
			}
			fi, err := os.Lstat(st.File)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
				t.Fatalf("file not replaced by a private regular file: %v %v", fi.Mode(), err)
			}
			e2, _ := newTestEngine(t, dir, nil)
			if again := mustToken(t, e2, host1); again.Password != tok.Password {
				t.Fatal("replacement not served")
			}
		})
	}
}

func TestSourcesAreKeptApart(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()

	useUser(t, s, "AKIAALICE0000000001", userARN)
	alice := mustToken(t, newEngineNoLog(t, dir), host1)
	useUser(t, s, "AKIABOB00000000000001", bobARN)
	bob := mustToken(t, newEngineNoLog(t, dir), host1)
	if alice.Password == bob.Password {
		t.Fatal("two users share a token")
	}
	if arn, _ := s.CheckToken(bob.Username, bob.Password); arn != bobARN || bob.Identity != bobARN {
		t.Fatalf("bob's token belongs to %q (identity %q)", arn, bob.Identity)
	}
	// Back to alice: her cached token, no call.
	s.ResetCalls()
	useUser(t, s, "AKIAALICE0000000001", userARN)
	if again := mustToken(t, newEngineNoLog(t, dir), host1); again.Password != alice.Password {
		t.Fatal("alice did not get her cached token back")
	}
	// No keys in the environment: the instance role, a third token.
	os.Unsetenv("AWS_ACCESS_KEY_ID")
	os.Unsetenv("AWS_SECRET_ACCESS_KEY")
	inst := mustToken(t, newEngineNoLog(t, dir), host1)
	if inst.Password == alice.Password || inst.Password == bob.Password || inst.Identity != s.InstanceCallerARN() {
		t.Fatal("instance role got a user's token")
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Fatalf("%d mints, want 1", n)
	}
}

func newEngineNoLog(t *testing.T, dir string) *Engine {
	e, _ := newTestEngine(t, dir, nil)
	return e
}

func TestInstanceRoleRotationKeepsCache(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	tok := mustToken(t, newEngineNoLog(t, dir), host1)
	s.RotateInstanceCredentials()
	s.ResetCalls()
	if got := mustToken(t, newEngineNoLog(t, dir), host1); got.Password != tok.Password {
		t.Fatal("rotation threw the cache away")
	}
	if n := s.Calls(""); n != 0 {
		t.Fatalf("%d calls after rotation", n)
	}
}

func TestConcurrentColdEnginesMintOnce(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Delay: 200 * time.Millisecond})
	dir := t.TempDir()
	const n = 16
	var wg sync.WaitGroup
	toks := make([]Token, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, _ := newTestEngine(t, dir, nil) // one engine per "process"
			h := host1
			if i%2 == 1 {
				h = host2
			}
			toks[i], errs[i] = e.Token(context.Background(), h)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if toks[i].Password != toks[0].Password {
			t.Fatal("concurrent lookups got different tokens")
		}
	}
	if c := s.Calls(fakeaws.APIECRGetAuthorizationToken); c != 1 {
		t.Fatalf("%d GetAuthorizationToken calls for %d concurrent cold lookups, want 1", c, n)
	}
}

func TestThrottledThenSuccess(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 2})
	e, logs := newTestEngine(t, t.TempDir(), nil)
	mustToken(t, e, host1)
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
	if !strings.Contains(logs.String(), "retrying ECR token mint") {
		t.Error("retries not logged")
	}
}

func TestThrottledPastBudget(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Throttle: 1000})
	e, _ := newTestEngine(t, t.TempDir(), func(o *Options) { o.RetryBudget = 1500 * time.Millisecond })
	start := time.Now()
	_, err := e.Token(context.Background(), host1)
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("err %v, want ErrThrottled", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("gave up after %v; budget was 1.5s", d)
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n < 2 {
		t.Errorf("only %d attempts", n)
	}
	checkOneLine(t, err, "ThrottlingException", "TOLLGATE_CACHE_DIR")
}

func checkOneLine(t *testing.T, err error, wants ...string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("message is not one line: %q", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	var te *Error
	if !errors.As(err, &te) || te.Fix == "" {
		t.Errorf("not an *Error with a fix: %#v", err)
	}
}

func TestOutageServesValidCachedToken(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	e, _ := newTestEngine(t, dir, nil)
	tok := mustToken(t, e, host1)
	rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.ExpiresAt = time.Now().Add(20 * time.Minute) })
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Fail: 1000, Status: 503, Code: "ServiceUnavailableException"})

	e2, logs := newTestEngine(t, dir, func(o *Options) { o.RetryBudget = time.Second })
	got, err := e2.Token(context.Background(), host1)
	if err != nil {
		t.Fatalf("outage with a valid cached token: %v", err)
	}
	if got.Password != tok.Password || !got.Stale {
		t.Fatalf("stale=%v, same=%v", got.Stale, got.Password == tok.Password)
	}
	if !strings.Contains(logs.String(), "serving cached ECR token inside its refresh margin") {
		t.Error("no warning logged")
	}
	n := s.Calls(fakeaws.APIECRGetAuthorizationToken)
	if n < 2 {
		t.Errorf("%d attempts, want retries", n)
	}
	// For a while after the failed refresh, other processes make a single
	// attempt, then serve the stale token at once...
	start := time.Now()
	again, err := newEngineNoLog(t, dir).Token(context.Background(), host1)
	if err != nil || !again.Stale || again.Password != tok.Password {
		t.Fatalf("right after a failed refresh: stale=%v err=%v", again.Stale, err)
	}
	if got := s.Calls(fakeaws.APIECRGetAuthorizationToken); got != n+1 {
		t.Fatalf("right after a failed refresh: %d more attempts, want 1", got-n)
	}
	// This engine has the default retry budget (20 s), whose backoff would
	// take seconds; one attempt takes milliseconds. 5 s tells them apart
	// with room for a loaded machine.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stale token took %v", d)
	}
	// ...and once the retry interval has passed, the whole retry budget again.
	later, _ := newTestEngine(t, dir, func(o *Options) { o.RetryBudget = time.Second })
	later.now = func() time.Time { return time.Now().Add(2 * staleRetryInterval) }
	if tok, err := later.Token(context.Background(), host1); err != nil || !tok.Stale {
		t.Fatal(err)
	}
	if got := s.Calls(fakeaws.APIECRGetAuthorizationToken); got < n+3 {
		t.Fatalf("after the retry interval: %d attempts, want retries", got-n-1)
	}
	// When ECR is back, the next lookup mints at once.
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{})
	if fresh := mustToken(t, newEngineNoLog(t, dir), host1); fresh.Stale || fresh.Password == tok.Password {
		t.Fatal("after the outage the stale token was served")
	}
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Fail: 1000, Status: 503, Code: "ServiceUnavailableException"})

	// Once the cached token has expired, the outage is an error.
	rewriteEntry(t, e, host1, func(x *tokencache.Entry) { x.ExpiresAt = time.Now().Add(-time.Second) })
	e3, _ := newTestEngine(t, dir, func(o *Options) { o.RetryBudget = 500 * time.Millisecond })
	_, err = e3.Token(context.Background(), host1)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	checkOneLine(t, err, "ServiceUnavailableException", host1)
}

func TestAccessDenied(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	s.Fail(fakeaws.APIECRGetAuthorizationToken, fakeaws.Fault{Deny: true})
	e, logs := newTestEngine(t, t.TempDir(), nil)
	_, err := e.Token(context.Background(), host1)
	if !errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrThrottled) {
		t.Fatalf("err %v, want ErrAccessDenied", err)
	}
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Errorf("access denied was retried: %d calls", n)
	}
	checkOneLine(t, err, "AccessDeniedException", "ecr:GetAuthorizationToken", "instance role")
	noSecrets(t, s, "error", err.Error())
	noSecrets(t, s, "log", logs.String())
}

func TestUnknownKeyIsAccessDenied(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIANOTKNOWN00000000")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-unknown")
	e, logs := newTestEngine(t, t.TempDir(), nil)
	_, err := e.Token(context.Background(), host1)
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("err %v, want ErrAccessDenied", err)
	}
	checkOneLine(t, err, "AKIANOTKNOWN00000000")
	if strings.Contains(err.Error()+logs.String(), "secret-unknown") {
		t.Fatal("secret key leaked")
	}
	_ = s
}

func TestNoCredentials(t *testing.T) {
	awsEnv(t, fakeaws.Options{}) // IMDS up, but no instance role
	e, _ := newTestEngine(t, t.TempDir(), nil)
	_, err := e.Token(context.Background(), host1)
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err %v, want ErrNoCredentials", err)
	}
	checkOneLine(t, err, "AWS_PROFILE", "no IAM role")

	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err = e.Token(context.Background(), host1)
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err %v, want ErrNoCredentials", err)
	}
	checkOneLine(t, err, "AWS_EC2_METADATA_DISABLED")

	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	t.Setenv("AWS_PROFILE", "nonesuch")
	_, err = e.Token(context.Background(), host1)
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err %v, want ErrNoCredentials", err)
	}
	checkOneLine(t, err, "profile nonesuch not found")
}

func TestIMDSUnreachable(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	s.CloseIMDS()
	e, _ := newTestEngine(t, t.TempDir(), nil)
	_, err := e.Token(context.Background(), host1)
	if !errors.Is(err, ErrIMDSUnreachable) {
		t.Fatalf("err %v, want ErrIMDSUnreachable", err)
	}
	checkOneLine(t, err, "IMDSv2", "AWS_PROFILE")
	if s.Calls("ecr") != 0 {
		t.Error("called ECR without credentials")
	}
}

func TestPublicECR(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	e, _ := newTestEngine(t, dir, nil)
	pub := mustToken(t, e, "public.ecr.aws")
	if !pub.Registry.Public {
		t.Fatal("not public")
	}
	if m, ok := s.TokenInfo(pub.Password); !ok || !m.Public || m.Region != "us-east-1" {
		t.Fatalf("public token not minted by ECR Public in us-east-1: %+v %v", m, ok)
	}
	alias := mustToken(t, newEngineNoLog(t, dir), "ecr-public.aws.com")
	if alias.Password != pub.Password {
		t.Error("ecr-public.aws.com did not share public.ecr.aws's token")
	}
	priv := mustToken(t, e, "111111111111.dkr.ecr.us-east-1.amazonaws.com")
	if priv.Password == pub.Password {
		t.Error("private us-east-1 registry got the public token")
	}
	if s.Calls(fakeaws.APIECRPublicGetAuthorizationToken) != 1 || s.Calls(fakeaws.APIECRGetAuthorizationToken) != 1 {
		t.Errorf("calls: %v", s.CallCounts())
	}
}

func TestFIPSHostWithCustomEndpoint(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	e, _ := newTestEngine(t, t.TempDir(), nil)
	tok := mustToken(t, e, "111111111111.dkr.ecr-fips.us-east-1.amazonaws.com")
	if m, _ := s.TokenInfo(tok.Password); m.Region != "us-east-1" {
		t.Fatalf("minted in %q", m.Region)
	}
	dual := mustToken(t, e, "111111111111.dkr-ecr.us-east-1.on.aws")
	if dual.Password == tok.Password {
		t.Error("FIPS and non-FIPS share a token")
	}
}

func TestPerRegistryRoleAndProfile(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	const crossRole = "arn:aws:iam::333333333333:role/puller"
	s.AddUser("AKIAPROFILE000000001", "secret-profile", "arn:aws:iam::444444444444:user/prof")
	cfgFile := os.Getenv("AWS_CONFIG_FILE")
	if err := os.WriteFile(cfgFile, []byte("[profile prof]\naws_access_key_id = AKIAPROFILE000000001\naws_secret_access_key = secret-profile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const crossHost = "333333333333.dkr.ecr.us-west-2.amazonaws.com"
	const profHost = "444444444444.dkr.ecr.us-west-2.amazonaws.com"
	e, logs := newTestEngine(t, t.TempDir(), func(o *Options) {
		o.Registries = map[string]config.ECRRegistry{
			"https://" + crossHost: {RoleARN: crossRole},
			profHost:               {Profile: "prof"},
		}
	})
	inst := mustToken(t, e, host1)
	cross := mustToken(t, e, crossHost)
	prof := mustToken(t, e, profHost)
	if s.Calls(fakeaws.APISTSAssumeRole) != 1 {
		t.Errorf("AssumeRole calls: %v", s.CallCounts())
	}
	if !strings.HasPrefix(cross.Identity, "arn:aws:sts::333333333333:assumed-role/puller/") {
		t.Errorf("cross-account identity %q", cross.Identity)
	}
	if arn, _ := s.CheckToken(prof.Username, prof.Password); arn != "arn:aws:iam::444444444444:user/prof" {
		t.Errorf("profile token belongs to %q", arn)
	}
	if inst.Password == cross.Password || inst.Password == prof.Password || cross.Password == prof.Password {
		t.Error("per-registry settings shared a token")
	}
	noSecrets(t, s, "log", logs.String())

	if _, err := NewEngine(Options{Registries: map[string]config.ECRRegistry{"docker.io": {}}}); !errors.Is(err, ErrConfig) {
		t.Errorf("non-ECR registry key: %v", err)
	}
	if _, err := NewEngine(Options{Registries: map[string]config.ECRRegistry{host1: {RoleARN: "puller"}}}); !errors.Is(err, ErrConfig) {
		t.Errorf("bad role ARN: %v", err)
	}
}

func TestNotECR(t *testing.T) {
	e, _ := newTestEngine(t, t.TempDir(), nil)
	if _, err := e.Token(context.Background(), "ghcr.io"); !errors.Is(err, ErrNotECR) {
		t.Fatalf("err %v", err)
	}
}

func TestOldCacheFilesAreSwept(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	ecrDir := filepath.Join(dir, "ecr")
	os.MkdirAll(ecrDir, 0o700)
	old := filepath.Join(ecrDir, "aws_us-west-2_0123456789abcdef01234567.json")
	recent := filepath.Join(ecrDir, "aws_us-west-2_aaaaaaaaaaaaaaaaaaaaaaaa.json")
	other := filepath.Join(ecrDir, "README")
	for _, p := range []string{old, recent, other} {
		os.WriteFile(p, []byte("{}"), 0o600)
	}
	past := time.Now().Add(-25 * time.Hour)
	os.Chtimes(old, past, past)
	os.Chtimes(other, past, past)
	mustToken(t, newEngineNoLog(t, dir), host1)
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Error("day-old cache file not removed")
	}
	for _, p := range []string{recent, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

func TestUnwritableCacheStillMints(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	// The cache directory would have to live under a regular file.
	e, logs := newTestEngine(t, filepath.Join(blocker, "cache"), nil)
	tok := mustToken(t, e, host1)
	if _, ok := s.CheckToken(tok.Username, tok.Password); !ok {
		t.Fatal("bad token")
	}
	if !strings.Contains(logs.String(), "token cache unusable") {
		t.Error("no warning about the cache")
	}
	// The in-process copy serves the next lookup.
	mustToken(t, e, host1)
	if n := s.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Fatalf("%d mints", n)
	}
}

func TestPublicFailureIsRememberedBriefly(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{}) // IMDS up, no role: no credentials
	dir := t.TempDir()
	_, err := newEngineNoLog(t, dir).Token(context.Background(), "public.ecr.aws")
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err %v", err)
	}
	calls := s.Calls("imds")
	// A second process answers from the remembered failure, without IMDS.
	_, err = newEngineNoLog(t, dir).Token(context.Background(), "ecr-public.aws.com")
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "remembered until") {
		t.Fatalf("err %v", err)
	}
	if s.Calls("imds") != calls {
		t.Fatal("remembered failure still asked IMDS")
	}
	// Private registries are not remembered as failing.
	s.SetInstanceRole("ci-worker", roleARN)
	mustToken(t, newEngineNoLog(t, dir), host1)
	// Public stays remembered until the memory lapses...
	if _, err := newEngineNoLog(t, dir).Token(context.Background(), "public.ecr.aws"); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("within the memory: %v", err)
	}
	later := newEngineNoLog(t, dir)
	later.now = func() time.Time { return time.Now().Add(negativeTTL + time.Minute) }
	if _, err := later.Token(context.Background(), "public.ecr.aws"); err != nil {
		t.Fatalf("after the memory lapsed: %v", err)
	}
	// ...and a successful mint clears it.
	if _, err := os.Stat(filepath.Join(dir, "ecr")); err != nil {
		t.Fatal(err)
	}
	mustToken(t, newEngineNoLog(t, dir), "public.ecr.aws")
	ents, _ := os.ReadDir(filepath.Join(dir, "ecr"))
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), ".none") {
			t.Errorf("remembered failure %s kept after a successful mint", de.Name())
		}
	}
}

func TestECREndpointRefusingIsUnreachable(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	useUser(t, s, "AKIAREFUSED000000001", "arn:aws:iam::123456789012:user/ci")
	closed, err := fakeaws.ClosedURL()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_ECR", closed)
	e, _ := newTestEngine(t, t.TempDir(), func(o *Options) { o.RetryBudget = time.Second })
	_, err = e.Token(context.Background(), host1)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "HTTP 0") || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("a refused connection should say the endpoint cannot be reached: %v", err)
	}
}

// A credential_process whose output the SDK cannot parse gets that whole
// output, secret key and session token included, quoted in the SDK's error.
// Neither the engine's error nor its log (at debug level) may carry it.
func TestCredentialProcessOutputNotLogged(t *testing.T) {
	awsEnv(t, fakeaws.Options{})
	script := filepath.Join(t.TempDir(), "creds.sh")
	out := `{"Version":"1","AccessKeyId":"AKIAPROCESS000000001","SecretAccessKey":"secret-fromprocess","SessionToken":"sessiontoken-fromprocess"}`
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho '"+out+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("AWS_CONFIG_FILE"), []byte("[profile proc]\ncredential_process = "+script+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_PROFILE", "proc")
	e, logs := newTestEngine(t, t.TempDir(), nil)
	_, err := e.Token(context.Background(), host1)
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err %v, want ErrNoCredentials", err)
	}
	for what, text := range map[string]string{"error": err.Error(), "log": logs.String()} {
		if strings.Contains(text, "secret-fromprocess") || strings.Contains(text, "sessiontoken-fromprocess") {
			t.Errorf("%s carries the credential process's secrets:\n%s", what, text)
		}
	}
}

// A lock file is created once and then only flock'ed, which leaves its
// modification time alone: on a host up for more than a day every lock file
// looks a day old. The sweep after a mint must still not remove one that
// another process holds while it mints, or a process arriving next creates
// a new lock file, takes it at once and mints a second time.
func TestSweepKeepsLockHeldByAnotherProcess(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	dir := t.TempDir()
	e := newEngineNoLog(t, dir)
	const otherRegion = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
	mustToken(t, e, otherRegion) // its lock file exists from now on
	req, err := e.lookup.Resolve(otherRegion)
	if err != nil {
		t.Fatal(err)
	}
	lockPath := e.disk.LockPath(req.Scope)
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(lockPath, past, past); err != nil {
		t.Fatal(err)
	}
	// Another process takes that lock to mint (two days after it was created).
	held, err := securefile.LockFile(context.Background(), lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	mustToken(t, newEngineNoLog(t, dir), host1) // mints, then sweeps
	if _, err := os.Stat(lockPath); err != nil {
		t.Fatalf("the sweep removed a lock file that is held: %v", err)
	}
}

// IMDS answering 429 is reachable but throttling: it is reported as such
// (not as "unreachable" with hop-limit advice), and retried within the
// budget like any other throttling.
func TestIMDSThrottlingIsThrottlingAndRetried(t *testing.T) {
	s := awsEnv(t, fakeaws.Options{})
	s.SetInstanceRole("ci-worker", roleARN)
	s.Fail(fakeaws.APIIMDSCredentials, fakeaws.Fault{Throttle: 1000})
	e, _ := newTestEngine(t, t.TempDir(), func(o *Options) { o.RetryBudget = 500 * time.Millisecond })
	_, err := e.Token(context.Background(), host1)
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("err %v, want ErrThrottled", err)
	}
	checkOneLine(t, err, "instance metadata service", "429")
	if strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "hop limit") {
		t.Errorf("throttling reported as an unreachable IMDS: %q", err)
	}
	// Throttled for the SDK's own attempts only: the engine's retry gets
	// through.
	s.Fail(fakeaws.APIIMDSCredentials, fakeaws.Fault{Throttle: imdsAttempts})
	e2, _ := newTestEngine(t, t.TempDir(), nil)
	mustToken(t, e2, host1)
}
