package fleet

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testSigner(t *testing.T, key, mode string) signer {
	t.Helper()
	s, err := NewSecret([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return signer{secret: s, mode: mode, now: time.Now}
}

const testKey = "0123456789abcdef-fleet-test-key"

func TestSignatureBindsSecretModeMethodPathAndTime(t *testing.T) {
	good := testSigner(t, testKey, "private")
	path := "/v2/registry.test/team/app/blobs/sha256:" + strings.Repeat("a", 64)
	signed := func(s signer, method, p string) *http.Request {
		r, err := http.NewRequest(method, "http://127.0.0.1:5001"+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.sign(r)
		return r
	}
	if err := good.verify(signed(good, http.MethodGet, path)); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
	unsigned, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:5001"+path, nil)
	other := testSigner(t, "another-secret-of-16-bytes-or-more", "private")
	public := testSigner(t, testKey, "public")
	late := good
	late.now = func() time.Time { return time.Now().Add(-2 * MaxClockSkew) }
	// A request signed for one path, then sent for another.
	moved := signed(good, http.MethodGet, path)
	moved.URL.Path = "/v2/registry.test/other/blobs/sha256:" + strings.Repeat("b", 64)
	// A HEAD's signature replayed as a GET.
	head := signed(good, http.MethodHead, path)
	head.Method = http.MethodGet
	// The mode header changed to match, the signature left as it was.
	relabelled := signed(public, http.MethodGet, path)
	relabelled.Header.Set(headerMode, "private")

	for name, c := range map[string]struct {
		r    *http.Request
		want error
	}{
		"unsigned":            {unsigned, ErrUnsigned},
		"another secret":      {signed(other, http.MethodGet, path), ErrBadSignature},
		"another mode":        {signed(public, http.MethodGet, path), ErrBadSignature},
		"mode header changed": {relabelled, ErrBadSignature},
		"another path":        {moved, ErrBadSignature},
		"another method":      {head, ErrBadSignature},
		"stale":               {signed(late, http.MethodGet, path), ErrStale},
	} {
		err := good.verify(c.r)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: verify = %v, want %v", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), testKey) {
			t.Errorf("%s: error shows the secret: %v", name, err)
		}
	}
}

func TestReadSecretRefusesExposedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok", "  "+testKey+"\n", 0o600)
	s, err := ReadSecret(ok)
	if err != nil {
		t.Fatalf("0600 secret refused: %v", err)
	}
	if string(s.key) != testKey {
		t.Fatal("white space around the secret was kept")
	}
	if got := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); strings.Contains(got, testKey) {
		t.Fatalf("formatting a Secret shows it: %s", got)
	}
	if _, err := ReadSecret(write("ro", testKey, 0o400)); err != nil {
		t.Fatalf("0400 secret refused: %v", err)
	}
	for name, mode := range map[string]os.FileMode{"group": 0o640, "world": 0o604, "all": 0o644} {
		_, err := ReadSecret(write(name, testKey, mode))
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%s-readable secret: err = %v, want a refusal saying chmod 600", name, err)
		}
		if err != nil && strings.Contains(err.Error(), testKey) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	if _, err := ReadSecret(write("short", "tooshort", 0o600)); err == nil || strings.Contains(err.Error(), "tooshort") {
		t.Errorf("short secret: err = %v, want a refusal that does not show it", err)
	}
	if _, err := ReadSecret(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := ReadSecret(dir); err == nil {
		t.Error("a directory was accepted as the secret file")
	}
}
