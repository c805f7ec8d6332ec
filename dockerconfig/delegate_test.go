package dockerconfig

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/internal/credsource"
)

// installHelper writes docker-credential-<name> as a shell script into a
// directory put first on PATH. The script logs "<action> <stdin>" to a file
// in the same directory and serves one fixed login for host "served.example.com".
func installHelper(t *testing.T, binDir, name, body string) string {
	t.Helper()
	log := filepath.Join(binDir, name+".log")
	script := "#!/bin/sh\nin=$(cat)\necho \"$1 $in\" >> '" + log + "'\n" + body
	if err := os.WriteFile(filepath.Join(binDir, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return log
}

const servingHelper = `case "$1" in
get) if [ "$in" = "served.example.com" ]; then echo '{"ServerURL":"served.example.com","Username":"helperuser","Secret":"helpersecret"}'; else echo "credentials not found in native keychain"; exit 1; fi;;
store) exit 0;;
erase) exit 0;;
list) echo '{"served.example.com":"helperuser"}';;
esac
`

func helperPath(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv(EnvDelegated, "")
	os.Unsetenv(EnvDelegated)
	return bin
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return string(b)
}

func TestCredHelpersDelegation(t *testing.T) {
	bin := helperPath(t)
	log := installHelper(t, bin, "fake", servingHelper)
	ctx := context.Background()
	s := newStore(t, `{"credHelpers":{"served.example.com":"fake","tollgate.example.com":"tollgate"},
		"auths":{"served.example.com":{"auth":"`+b64("fileuser:filepass")+`"},"tollgate.example.com":{"auth":"`+b64("t:tp")+`"}}}`)
	u, p, err := s.Get(ctx, "served.example.com")
	if err != nil || u != "helperuser" || p != "helpersecret" {
		t.Fatalf("Get = %q %q %v", u, p, err)
	}
	if got := readLog(t, log); got != "get served.example.com\n" {
		t.Fatalf("helper log %q", got)
	}
	// Self-reference in credHelpers: skipped, auths served, helper never run.
	u, p, err = s.Get(ctx, "tollgate.example.com")
	if err != nil || u != "t" || p != "tp" {
		t.Fatalf("Get self = %q %q %v", u, p, err)
	}
	// Put for a delegated host goes to the helper, not to the file.
	before, _ := os.ReadFile(s.Path())
	if err := s.Put(ctx, "served.example.com", "x", "y"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(s.Path())
	if string(before) != string(after) {
		t.Error("delegated store wrote the file")
	}
	if got := readLog(t, log); !strings.Contains(got, `store {"ServerURL":"served.example.com","Username":"x","Secret":"y"}`) {
		t.Fatalf("helper log %q", got)
	}
	list, err := s.List(ctx)
	if err != nil || list["served.example.com"] != "helperuser" || list["tollgate.example.com"] != "t" {
		t.Fatalf("List = %v %v", list, err)
	}
}

func TestCredsStoreDelegationFallsBackToAuths(t *testing.T) {
	bin := helperPath(t)
	log := installHelper(t, bin, "fake", servingHelper)
	ctx := context.Background()
	s := newStore(t, `{"credsStore":"fake","auths":{"file.example.com":{"auth":"`+b64("fu:fp")+`"}}}`)
	if u, p, err := s.Get(ctx, "served.example.com"); err != nil || u != "helperuser" || p != "helpersecret" {
		t.Fatalf("Get = %q %q %v", u, p, err)
	}
	if u, p, err := s.Get(ctx, "file.example.com"); err != nil || u != "fu" || p != "fp" {
		t.Fatalf("Get fallback = %q %q %v", u, p, err)
	}
	if _, _, err := s.Get(ctx, "none.example.com"); !credsource.IsNotFound(err) {
		t.Fatalf("Get none: %v", err)
	}
	if err := s.Erase(ctx, "file.example.com"); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, log); !strings.Contains(got, "erase file.example.com") {
		t.Fatalf("helper not asked to erase: %q", got)
	}
	if _, _, err := s.Get(ctx, "file.example.com"); !credsource.IsNotFound(err) {
		t.Fatalf("auths entry not erased: %v", err)
	}
}

func TestSelfAsCredsStoreDoesNotRecurse(t *testing.T) {
	bin := helperPath(t)
	// A helper named tollgate that would loop forever if it were run.
	log := installHelper(t, bin, "tollgate", "sleep 30\n")
	s := newStore(t, `{"credsStore":"tollgate","auths":{"a.example.com":{"auth":"`+b64("u:p")+`"}}}`)
	start := time.Now()
	if u, p, err := s.Get(context.Background(), "a.example.com"); err != nil || u != "u" || p != "p" {
		t.Fatalf("Get = %q %q %v", u, p, err)
	}
	if err := s.Put(context.Background(), "b.example.com", "u2", "p2"); err != nil {
		t.Fatal(err)
	}
	if u, _, err := s.Get(context.Background(), "b.example.com"); err != nil || u != "u2" {
		t.Fatalf("stored login: %q %v", u, err)
	}
	if time.Since(start) > 5*time.Second || readLog(t, log) != "" {
		t.Fatal("the self-named helper was run")
	}
}

func TestSelfUnderAnotherNameDoesNotRecurse(t *testing.T) {
	bin := helperPath(t)
	// docker-credential-alias is this very executable: it must be recognised.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "docker-credential-alias")); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, `{"credsStore":"alias","auths":{"a.example.com":{"auth":"`+b64("u:p")+`"}}}`)
	if u, _, err := s.Get(context.Background(), "a.example.com"); err != nil || u != "u" {
		t.Fatalf("Get = %q %v", u, err)
	}
	// And a tollgate started by tollgate runs no helper at all.
	log := installHelper(t, bin, "fake", servingHelper)
	t.Setenv(EnvDelegated, "1")
	s2 := newStore(t, `{"credsStore":"fake","auths":{"a.example.com":{"auth":"`+b64("u:p")+`"}}}`)
	if u, _, err := s2.Get(context.Background(), "a.example.com"); err != nil || u != "u" {
		t.Fatalf("Get = %q %v", u, err)
	}
	if readLog(t, log) != "" {
		t.Fatal("helper run although " + EnvDelegated + " was set")
	}
}

func TestMissingHelper(t *testing.T) {
	helperPath(t)
	s := newStore(t, `{"credHelpers":{"a.example.com":"nosuchhelper"}}`)
	_, _, err := s.Get(context.Background(), "a.example.com")
	if !errors.Is(err, ErrHelperMissing) || !strings.Contains(err.Error(), "docker-credential-nosuchhelper is not on PATH") || !strings.Contains(err.Error(), s.Path()) {
		t.Fatalf("err = %v", err)
	}
	s = newStore(t, `{"credsStore":"../../bin/sh"}`)
	if _, _, err := s.Get(context.Background(), "a.example.com"); !errors.Is(err, ErrHelperMissing) {
		t.Fatalf("path as helper name: %v", err)
	}
}

func TestHangingHelperIsKilled(t *testing.T) {
	bin := helperPath(t)
	installHelper(t, bin, "hang", "sleep 60 &\nwait\n")
	s := newStore(t, `{"credHelpers":{"a.example.com":"hang"}}`)
	s.HelperTimeout = 300 * time.Millisecond
	start := time.Now()
	_, _, err := s.Get(context.Background(), "a.example.com")
	took := time.Since(start)
	if !errors.Is(err, ErrHelperTimeout) || !strings.Contains(err.Error(), "docker-credential-hang") || !strings.Contains(err.Error(), "300ms") {
		t.Fatalf("err = %v", err)
	}
	if took > 3*time.Second {
		t.Fatalf("took %v: the hanging helper was not killed in time", took)
	}
}

func TestFailingHelper(t *testing.T) {
	bin := helperPath(t)
	installHelper(t, bin, "broken", "echo 'keychain locked'\nexit 3\n")
	s := newStore(t, `{"credsStore":"broken"}`)
	_, _, err := s.Get(context.Background(), "a.example.com")
	if !errors.Is(err, ErrHelperFailed) || !strings.Contains(err.Error(), "keychain locked") || !strings.Contains(err.Error(), "credsStore") {
		t.Fatalf("err = %v", err)
	}
}

// A helper that answers and exits 0 but leaves a background process holding
// its stdout has answered: its login is served, and the secret never ends up
// quoted in an error. A helper that prints a login and then fails does not
// get that login quoted either.
func TestHelperOutputWithSecretIsNeverQuoted(t *testing.T) {
	bin := helperPath(t)
	const login = `{"ServerURL":"a.example.com","Username":"u","Secret":"s3cret-in-output"}`
	installHelper(t, bin, "lingers", "echo '"+login+"'\nsleep 5 &\nexit 0\n")
	installHelper(t, bin, "printsfails", "echo '"+login+"'\nexit 1\n")
	s := newStore(t, `{"credHelpers":{"a.example.com":"lingers","b.example.com":"printsfails"}}`)
	start := time.Now()
	u, p, err := s.Get(context.Background(), "a.example.com")
	if err != nil && strings.Contains(err.Error(), "s3cret-in-output") {
		t.Fatalf("error quotes the secret: %v", err)
	}
	if err != nil || u != "u" || p != "s3cret-in-output" {
		t.Fatalf("Get = %q, %v; want the helper's login", u, err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("took %v: waited for the background process", took)
	}
	_, _, err = s.Get(context.Background(), "b.example.com")
	if !errors.Is(err, ErrHelperFailed) || strings.Contains(err.Error(), "s3cret-in-output") {
		t.Fatalf("failing helper: %v", err)
	}
}
