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
)

func TestPublicProxyRefusesPrivateCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := CheckCacheMode(dir, config.ModePrivate); err != nil {
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

	err := CheckCacheMode(dir, config.ModePublic)
	if !errors.Is(err, ErrPrivateCacheInPublicMode) {
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
	if err := CheckCacheMode(other, config.ModePublic); !errors.Is(err, ErrPrivateCacheInPublicMode) {
		t.Fatalf("unrecorded non-empty cache in public mode: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "c3")
	if err := CheckCacheMode(empty, config.ModePublic); err != nil {
		t.Fatal(err)
	}
	if err := CheckCacheMode(empty, config.ModePublic); err != nil {
		t.Fatal(err)
	}
	if err := CheckCacheMode(empty, config.ModePrivate); err != nil {
		t.Fatal(err)
	}
	if err := CheckCacheMode(empty, config.ModePublic); !errors.Is(err, ErrPrivateCacheInPublicMode) {
		t.Fatalf("public after private: %v", err)
	}
}
