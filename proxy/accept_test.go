package proxy

import (
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestNarrowAcceptGetsPlatformManifest: a client that accepts Docker schema 2
// image manifests only, asking for a tag that is a Docker manifest list, gets
// what the registry itself gives it (distribution and Docker Hub pick the
// linux/amd64 manifest), not a list it did not ask for; a client that
// accepts lists still gets the list. The cache keeps both answers apart,
// also when the upstream is down.
func TestNarrowAcceptGetsPlatformManifest(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	amd64 := mutate.MediaType(randomImage(t, 512, 1), types.DockerManifestSchema2)
	arm64 := mutate.MediaType(randomImage(t, 512, 1), types.DockerManifestSchema2)
	list := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	), types.DockerManifestList)
	up.pushIndex(t, "team/multi", "v1", list)
	listDigest, _ := list.Digest()
	amd64Digest, _ := amd64.Digest()
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	path := "/v2/" + testHost + "/team/multi/manifests/v1"
	narrow := http.Header{"Accept": {string(types.DockerManifestSchema2)}}
	wide := http.Header{"Accept": {string(types.DockerManifestList) + ", " + string(types.DockerManifestSchema2)}}

	check := func(label string, hdr http.Header, method string, wantDigest v1.Hash, wantType types.MediaType) {
		t.Helper()
		resp, _ := p.do(t, method, path, hdr)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != wantDigest.String() ||
			resp.Header.Get("Content-Type") != string(wantType) {
			t.Fatalf("%s %s: %d, %s %q; want %s %q", label, method, resp.StatusCode,
				resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"), wantDigest, wantType)
		}
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		check("narrow client", narrow, m, amd64Digest, types.DockerManifestSchema2)
		check("list client", wide, m, listDigest, types.DockerManifestList)
		// A client that names no manifest type gets the content as stored.
		check("client without Accept", nil, m, listDigest, types.DockerManifestList)
	}
	// Revalidated from the cache, in either order.
	check("narrow client, warm", narrow, http.MethodGet, amd64Digest, types.DockerManifestSchema2)
	check("list client, warm", wide, http.MethodGet, listDigest, types.DockerManifestList)

	// Upstream down: the cached tag (the list, recorded last) still serves
	// the client that accepts it, and is not handed to one that does not.
	up.failWith.Store(http.StatusServiceUnavailable)
	check("list client, upstream down", wide, http.MethodGet, listDigest, types.DockerManifestList)
	resp, body := p.do(t, http.MethodGet, path, narrow)
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("narrow client, upstream down: served %s %q (%d bytes), a type it did not accept",
			resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type"), len(body))
	}
}
