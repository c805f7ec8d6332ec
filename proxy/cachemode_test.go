package proxy

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/proxy/cache"
)

// claimMode opens and closes a cache in dir in mode, as tollgate proxy
// does at start-up.
func claimMode(dir string, mode cache.Mode) error {
	c, err := cache.Open(context.Background(), cache.Options{Dir: dir, Mode: mode})
	if err != nil {
		return err
	}
	return c.Close(context.Background())
}

func TestPublicProxyRefusesPrivateCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := claimMode(dir, cache.ModePrivate); err != nil {
		t.Fatal(err)
	}
	// A private proxy fills the cache from an upstream that needs a login.
	up := startUpstream(t, upstreamOpts{htpasswdUser: "bob", htpasswdPass: "hunter2"})
	img := randomImage(t, 1024, 1)
	up.push(t, "team/secret", "v1", img, &authn.Basic{Username: "bob", Password: "hunter2"})
	creds := &staticCredentials{host: testHost, user: "bob", secret: "hunter2"}
	priv := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, credentials: creds, cacheDir: dir})
	if _, err := pull(priv.ref(t, "team/secret:v1")); err != nil {
		t.Fatal(err)
	}
	priv.Close()
	ctx := context.Background()
	_ = priv.cache.Close(ctx)

	err := claimMode(dir, cache.ModePublic)
	if !errors.Is(err, cache.ErrPrivateContent) {
		t.Fatalf("public mode on a private cache: %v", err)
	}
	// Why it matters: without the check a public proxy serves the private
	// image by digest from that cache, never asking the upstream.
	pub := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}, mode: config.ModePublic, cacheDir: dir})
	d, _ := img.Digest()
	resp, _ := pub.do(t, http.MethodGet, "/v2/"+testHost+"/team/secret/manifests/"+d.String(), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the scenario the check prevents did not reproduce (status %d): the test proves nothing", resp.StatusCode)
	}

	// A cache with content but no record is refused too; an empty one is
	// fine, and public then private is fine.
	other := filepath.Join(t.TempDir(), "c2")
	if err := os.MkdirAll(filepath.Join(other, "blobs", "sha256"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := claimMode(other, cache.ModePublic); !errors.Is(err, cache.ErrPrivateContent) {
		t.Fatalf("unrecorded non-empty cache in public mode: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "c3")
	if err := claimMode(empty, cache.ModePublic); err != nil {
		t.Fatal(err)
	}
	if err := claimMode(empty, cache.ModePublic); err != nil {
		t.Fatal(err)
	}
	if err := claimMode(empty, cache.ModePrivate); err != nil {
		t.Fatal(err)
	}
	if err := claimMode(empty, cache.ModePublic); !errors.Is(err, cache.ErrPrivateContent) {
		t.Fatalf("public after private: %v", err)
	}
}
