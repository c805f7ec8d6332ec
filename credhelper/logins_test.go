package credhelper

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/internal/credsource"
)

// The config-dir side of the resolver and helper, with a real
// dockerconfig.Store on real files (no ECR engine: ECR hosts are never
// stored, whatever the engine would mint).
func TestHelperWithConfigDirLogins(t *testing.T) {
	dir := t.TempDir()
	store := &dockerconfig.Store{Dir: dir, Self: "tollgate"}
	h := NewHelper(&Resolver{Logins: store})

	if _, _, err := h.Get("reg.example.com"); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("Get with no config: %v, want the protocol's not-found", err)
	}
	if err := h.Add(&credentials.Credentials{ServerURL: "reg.example.com:5000", Username: "u", Secret: "s:1"}); err != nil {
		t.Fatal(err)
	}
	u, s, err := h.Get("https://REG.example.com:5000/v2/")
	if err != nil || u != "u" || s != "s:1" {
		t.Fatalf("Get = %q %q %v", u, s, err)
	}
	r := &Resolver{Logins: store}
	if u, _, err := r.Credentials(context.Background(), "reg.example.com:5000"); err != nil || u != "u" {
		t.Fatalf("Resolver = %q %v", u, err)
	}
	if _, _, err := r.Credentials(context.Background(), "other.example.com"); !errors.Is(err, credsource.ErrNotFound) || !credsource.IsNotFound(err) {
		t.Fatalf("Resolver miss: %v", err)
	}

	// ECR: store succeeds and writes no secret.
	before, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := h.Add(&credentials.Credentials{ServerURL: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Secret: "tok"}); err != nil {
		t.Fatalf("store for ECR: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if string(before) != string(after) {
		t.Fatalf("store for an ECR host wrote the config:\n%s", after)
	}

	list, err := h.List()
	if err != nil || len(list) != 1 || list["reg.example.com:5000"] != "u" {
		t.Fatalf("List = %v %v", list, err)
	}
	if err := h.Delete("reg.example.com:5000"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Get("reg.example.com:5000"); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("Get after Delete: %v", err)
	}
}

func TestHelperWithoutConfigDir(t *testing.T) {
	h := NewHelper(&Resolver{Logins: &dockerconfig.Store{Self: "tollgate"}})
	if _, _, err := h.Get("reg.example.com"); !credentials.IsErrCredentialsNotFound(err) {
		t.Fatalf("Get: %v", err)
	}
	err := h.Add(&credentials.Credentials{ServerURL: "reg.example.com", Username: "u", Secret: "s"})
	if !errors.Is(err, dockerconfig.ErrNoConfigDir) || !strings.Contains(err.Error(), "SPACELIFT_DOCKER_CONFIG_DIR") {
		t.Fatalf("Add: %v", err)
	}
	if l, err := h.List(); err != nil || len(l) != 0 {
		t.Fatalf("List: %v %v", l, err)
	}
}

func TestHelperCorruptConfigIsAnErrorNotNotFound(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths": {`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := NewHelper(&Resolver{Logins: &dockerconfig.Store{Dir: dir, Self: "tollgate"}})
	_, _, err := h.Get("reg.example.com")
	if err == nil || credentials.IsErrCredentialsNotFound(err) || !errors.Is(err, dockerconfig.ErrCorrupt) {
		t.Fatalf("Get on a corrupt config: %v; want the parse error, not 'not found'", err)
	}
}
