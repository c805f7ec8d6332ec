package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Skopeo runs Debian's skopeo in isolation from the machine's settings: an
// empty registries.conf, its own auth file, no signature policy, and a
// private temp dir.
type Skopeo struct {
	// AuthFile is passed as --authfile; a containers auth.json (auths,
	// credHelpers). Tests may rewrite it.
	AuthFile string
	// Env is added to skopeo's environment, e.g. a PATH holding a credential
	// helper and SPACELIFT_DOCKER_CONFIG_DIR.
	Env []string
	dir string
}

// NewSkopeo prepares a skopeo with an empty auth file in a private dir.
func NewSkopeo(t testing.TB) *Skopeo {
	t.Helper()
	RequireCommands(t, "skopeo")
	dir := t.TempDir()
	s := &Skopeo{AuthFile: filepath.Join(dir, "auth.json"), dir: dir}
	if err := os.WriteFile(s.AuthFile, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "registries.conf"), []byte("unqualified-search-registries = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	return s
}

// WriteAuthFile replaces the auth file with v marshalled as JSON.
func (s *Skopeo) WriteAuthFile(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.AuthFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Run runs skopeo with the global flags that isolate it, then args.
// Nothing it does can leave loopback: the empty registries.conf is passed
// with --registries-conf (skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF),
// and every non-loopback request goes to a proxy address where nothing
// listens, so even a mistyped reference fails here instead of reaching out.
func (s *Skopeo) Run(ctx context.Context, args ...string) (string, error) {
	env := append(os.Environ(),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(s.dir, "registries.conf"),
		"REGISTRY_AUTH_FILE="+s.AuthFile,
		"TMPDIR="+filepath.Join(s.dir, "tmp"),
		"HOME="+s.dir,
	)
	env = append(env, LoopbackOnlyEnv()...)
	env = append(env, s.Env...)
	full := append([]string{"--insecure-policy", "--registries-conf", filepath.Join(s.dir, "registries.conf"),
		"--tmpdir", filepath.Join(s.dir, "tmp")}, args...)
	return Run(ctx, env, "skopeo", full...)
}

// LoopbackOnlyEnv sends a client's non-loopback HTTP(S) requests to a proxy
// on a loopback port where nothing listens, so they fail at once without
// leaving the machine (Go and containers/image honour these variables).
func LoopbackOnlyEnv() []string {
	const dead = "http://127.0.0.1:9"
	const local = "127.0.0.1,localhost,::1,127.0.0.0/8"
	return []string{
		"HTTP_PROXY=" + dead, "HTTPS_PROXY=" + dead, "http_proxy=" + dead, "https_proxy=" + dead,
		"NO_PROXY=" + local, "no_proxy=" + local,
	}
}

// Copy copies src to dst (transport:reference, e.g. docker://127.0.0.1:5000/a/b:1
// or dir:/path) over plain http, with the auth file for both sides; extra
// flags (--all, --src-creds ...) come before the references.
func (s *Skopeo) Copy(ctx context.Context, src, dst string, extra ...string) error {
	args := []string{"copy", "--retry-times", "0",
		"--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-authfile", s.AuthFile, "--dest-authfile", s.AuthFile}
	args = append(args, extra...)
	args = append(args, src, dst)
	_, err := s.Run(ctx, args...)
	return err
}

// Pull copies docker://ref (a reference without transport) into a new
// directory with the dir: transport, which keeps manifests byte for byte
// (skopeo verifies every blob's digest as it copies). With all, every image
// of an index is copied. It returns the directory and the digest of the
// top-level manifest as stored there.
func (s *Skopeo) Pull(ctx context.Context, t testing.TB, ref string, all bool, extra ...string) (dir, digest string, err error) {
	t.Helper()
	dir, err = os.MkdirTemp(s.dir, "pull")
	if err != nil {
		t.Fatal(err)
	}
	if all {
		extra = append(extra, "--all")
	}
	if err := s.Copy(ctx, "docker://"+ref, "dir:"+dir, extra...); err != nil {
		return dir, "", err
	}
	digest, err = FileDigest(filepath.Join(dir, "manifest.json"))
	return dir, digest, err
}

// ManifestDigest returns the digest of the manifest that docker://ref
// serves, computed over its raw bytes (skopeo inspect --raw).
func (s *Skopeo) ManifestDigest(ctx context.Context, ref string, extra ...string) (string, error) {
	args := append([]string{"inspect", "--raw", "--retry-times", "0", "--tls-verify=false", "--authfile", s.AuthFile}, extra...)
	args = append(args, "docker://"+ref)
	out, err := s.Run(ctx, args...)
	if err != nil {
		return "", err
	}
	return Digest([]byte(out)), nil
}

// Digest is the sha256 digest of b in OCI form, sha256:<hex>.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FileDigest is the sha256 digest of a file's contents.
func FileDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return Digest(b), nil
}

// DirBlobs lists the blob digests a dir: copy holds (files named by their
// hex digest, as skopeo's dir transport writes them).
func DirBlobs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if len(name) == 64 && !strings.Contains(name, ".") {
			out = append(out, "sha256:"+name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no blobs in %s", dir)
	}
	return out, nil
}
