package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

func firstLayer(t *testing.T, up *upstream, repo, tag string) (digest.Digest, []byte) {
	t.Helper()
	ref, _ := name.ParseReference(up.host+"/"+repo+":"+tag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	b, _ := io.ReadAll(rc)
	rc.Close()
	up.log.reset()
	return digest.Digest(d.String()), b
}

func TestRangeRequests(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 64<<10, 1), nil)
	d, blob := firstLayer(t, up, "team/app", "v1")
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	path := "/v2/" + testHost + "/team/app/blobs/" + d.String()

	// Cold: forwarded upstream, 206 with exactly the range.
	resp, body := p.do(t, http.MethodGet, path, http.Header{"Range": {"bytes=100-199"}})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, blob[100:200]) {
		t.Fatalf("cold range: %d, %d bytes, equal=%v", resp.StatusCode, len(body), bytes.Equal(body, blob[100:200]))
	}
	if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, "bytes 100-199/") {
		t.Fatalf("cold range Content-Range %q", cr)
	}
	ranged := false
	for _, r := range up.log.all() {
		if r.Range == "bytes=100-199" {
			ranged = true
		}
	}
	if !ranged {
		t.Fatalf("the range was not forwarded upstream: %+v", up.log.all())
	}
	// The partial answer never enters the cache; the background fill
	// stores the whole, verified blob.
	testwait.True(t, 5*time.Second, "background fill after a cold range completed", func() bool {
		_, ok := p.cache.Stat(testHost, "team/app", d)
		return ok
	})
	if n, _ := p.cache.Stat(testHost, "team/app", d); n != int64(len(blob)) {
		t.Fatalf("cached size %d, want %d", n, len(blob))
	}

	// Warm: served from the cache, no upstream traffic.
	up.log.reset()
	for _, rg := range []struct {
		hdr      string
		from, to int
	}{{"bytes=0-9", 0, 10}, {"bytes=1000-", 1000, len(blob)}, {"bytes=-5", len(blob) - 5, len(blob)}} {
		resp, body = p.do(t, http.MethodGet, path, http.Header{"Range": {rg.hdr}})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, blob[rg.from:rg.to]) {
			t.Fatalf("warm range %s: %d, %d bytes", rg.hdr, resp.StatusCode, len(body))
		}
	}
	if n := len(up.log.all()); n != 0 {
		t.Fatalf("warm ranges went upstream %d times", n)
	}
}

func TestHeadBlobDoesNotDownload(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	up.push(t, "team/app", "v1", randomImage(t, 8<<10, 1), nil)
	d, blob := firstLayer(t, up, "team/app", "v1")
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	resp, body := p.do(t, http.MethodHead, "/v2/"+testHost+"/team/app/blobs/"+d.String(), nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("HEAD: %d, body %d bytes", resp.StatusCode, len(body))
	}
	if resp.ContentLength != int64(len(blob)) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("HEAD headers: length %d digest %q", resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}
	if n := up.log.count(http.MethodGet, "/blobs/"); n != 0 {
		t.Fatalf("HEAD of an uncached blob downloaded it (%d GETs)", n)
	}
	if n := up.log.count(http.MethodHead, "/blobs/"); n != 1 {
		t.Fatalf("HEAD of an uncached blob: %d upstream HEADs, want 1", n)
	}
	// Unknown blob: 404 BLOB_UNKNOWN.
	resp, _ = p.do(t, http.MethodHead, "/v2/"+testHost+"/team/app/blobs/sha256:"+strings.Repeat("0", 64), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of an unknown blob: %d", resp.StatusCode)
	}
	resp, body = p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/blobs/sha256:"+strings.Repeat("0", 64), nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "BLOB_UNKNOWN") {
		t.Fatalf("GET of an unknown blob: %d %s", resp.StatusCode, body)
	}
}

func TestCachedBlobScopedToRepository(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := randomImage(t, 8<<10, 1)
	up.push(t, "team/a", "v1", img, nil)
	up.push(t, "team/b", "v1", img, nil)
	d, _ := firstLayer(t, up, "team/a", "v1")
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	if _, err := pull(p.ref(t, "team/a:v1")); err != nil {
		t.Fatal(err)
	}

	// team/c does not have the blob upstream: knowing the digest is not
	// enough to read it from the cache through team/c.
	up.log.reset()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, body := p.do(t, method, "/v2/"+testHost+"/team/c/blobs/"+d.String(), nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s of a blob cached for team/a through team/c: %d %s", method, resp.StatusCode, body)
		}
	}
	if up.log.count(http.MethodHead, "/team/c/blobs/") == 0 {
		t.Fatal("the upstream was not asked about team/c")
	}
	if n := up.log.count(http.MethodGet, "/blobs/"); n != 0 {
		t.Fatalf("%d blob downloads while checking access", n)
	}

	// team/b has it upstream: confirmed with a HEAD, then served from the
	// cache without a download.
	up.log.reset()
	if _, err := pull(p.ref(t, "team/b:v1")); err != nil {
		t.Fatal(err)
	}
	if n := up.log.count(http.MethodGet, "/blobs/"); n != 0 {
		t.Fatalf("pull of team/b downloaded %d blobs already cached for team/a", n)
	}
	if up.log.count(http.MethodHead, "/team/b/blobs/"+d.String()) != 1 {
		t.Fatalf("access to team/b not confirmed upstream: %+v", up.log.all())
	}
}

func TestIndexAndAcceptNegotiation(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	up.pushIndex(t, "team/multi", "v1", idx)
	// A docker v2 schema image too.
	dimg := mutate.MediaType(randomImage(t, 512, 1), types.DockerManifestSchema2)
	up.push(t, "team/docker", "v1", dimg, nil)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})

	ref := p.ref(t, "team/multi:v1")
	gotIdx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if d, _ := gotIdx.Digest(); d != want {
		t.Fatalf("index digest %s, want %s", d, want)
	}
	im, _ := gotIdx.IndexManifest()
	for _, m := range im.Manifests {
		img, err := gotIdx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := readImage(img); err != nil {
			t.Fatalf("child %s: %v", m.Digest, err)
		}
	}
	resp, _ := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/multi/manifests/v1", http.Header{"Accept": {string(types.OCIImageIndex)}})
	if resp.Header.Get("Content-Type") != string(types.OCIImageIndex) {
		t.Fatalf("index Content-Type %q", resp.Header.Get("Content-Type"))
	}
	resp, _ = p.do(t, http.MethodHead, "/v2/"+testHost+"/team/docker/manifests/v1", http.Header{"Accept": {string(types.DockerManifestSchema2)}})
	dd, _ := dimg.Digest()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != string(types.DockerManifestSchema2) || resp.Header.Get("Docker-Content-Digest") != dd.String() || resp.ContentLength <= 0 {
		t.Fatalf("HEAD docker manifest: %d %v", resp.StatusCode, resp.Header)
	}
	// The client's Accept header reaches the upstream as sent.
	up.log.reset()
	odd := "application/vnd.example.test+json"
	_, _ = p.do(t, http.MethodGet, "/v2/"+testHost+"/team/docker/manifests/sha256:"+strings.Repeat("1", 64), http.Header{"Accept": {odd, string(types.OCIManifestSchema1)}})
	passed := false
	for _, r := range up.log.all() {
		if strings.Contains(r.Path, "/manifests/") && strings.HasPrefix(r.Accept, odd+","+string(types.OCIManifestSchema1)+",") {
			passed = true
		}
	}
	if !passed {
		t.Fatalf("Accept not passed through: %+v", up.log.all())
	}
	// Unknown manifest: MANIFEST_UNKNOWN 404.
	resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/docker/manifests/nope", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "MANIFEST_UNKNOWN") {
		t.Fatalf("unknown tag: %d %s", resp.StatusCode, body)
	}
}

func TestTagsListPagination(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := randomImage(t, 256, 1)
	tags := []string{"a", "b", "c", "d", "e"}
	for _, tag := range tags {
		up.push(t, "team/app", tag, img, nil)
	}
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	for _, style := range []struct{ name, first string }{
		{"path", "/v2/" + testHost + "/team/app/tags/list?n=2"},
		{"ns", "/v2/team/app/tags/list?n=2&ns=" + testHost},
	} {
		t.Run(style.name, func(t *testing.T) {
			var got []string
			next := style.first
			for pages := 0; next != ""; pages++ {
				if pages > 5 {
					t.Fatal("pagination does not end")
				}
				resp, body := p.do(t, http.MethodGet, next, nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d %s", next, resp.StatusCode, body)
				}
				var list struct {
					Name string
					Tags []string
				}
				if err := json.Unmarshal(body, &list); err != nil {
					t.Fatal(err)
				}
				if len(list.Tags) > 2 {
					t.Fatalf("page of %d tags, asked for 2", len(list.Tags))
				}
				got = append(got, list.Tags...)
				next = ""
				if link := resp.Header.Get("Link"); link != "" {
					u := link[strings.Index(link, "<")+1 : strings.Index(link, ">")]
					pu, err := url.Parse(u)
					if err != nil {
						t.Fatal(err)
					}
					if style.name == "ns" && pu.Query().Get("ns") != testHost {
						t.Fatalf("ns lost in Link %q", link)
					}
					if !strings.HasPrefix(pu.Path, "/v2/") || pu.Host != "" {
						t.Fatalf("Link %q does not point at the proxy", link)
					}
					next = u
				}
			}
			if strings.Join(got, ",") != strings.Join(tags, ",") {
				t.Fatalf("tags over all pages %v, want %v", got, tags)
			}
		})
	}
	// Through the real client too.
	ref, _ := name.NewRepository(p.host+"/"+testHost+"/team/app", name.Insecure)
	all, err := remote.List(ref)
	if err != nil || len(all) != len(tags) {
		t.Fatalf("remote.List: %v %v", all, err)
	}
}

func TestInvalidNames(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	for _, tc := range []struct{ path, code string }{
		{"/v2/" + testHost + "/Team/App/manifests/v1", "NAME_INVALID"},
		{"/v2/" + testHost + "/team/app/manifests/bad%20tag", "NAME_INVALID"},
		{"/v2/" + testHost + "/team/app/manifests/-bad", "TAG_INVALID"},
		{"/v2/" + testHost + "/team/app/blobs/sha256:short", "DIGEST_INVALID"},
		{"/v2/" + testHost + "/team/app/manifests/sha256:zz", "DIGEST_INVALID"},
		{"/v2/" + testHost + "/team/app/manifests/" + strings.Repeat("x", 129), "TAG_INVALID"},
	} {
		resp, body := p.do(t, http.MethodGet, tc.path, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want 400 %s", tc.path, resp.StatusCode, body, tc.code)
		}
	}
	if n := len(up.log.all()); n != 0 {
		t.Fatalf("invalid names reached upstream %d times", n)
	}
}

func TestTagsListFromSloppyUpstreamPagination(t *testing.T) {
	// An upstream whose pages repeat the "last" tag and come unsorted.
	pages := map[string]string{
		"":  `{"name":"x","tags":["c","a"]}`,
		"c": `{"name":"x","tags":["c","e","d"]}`,
	}
	links := map[string]string{"": `</v2/team/app/tags/list?last=c&n=2>; rel="next"`}
	var calls int
	f := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		calls++
		last := r.URL.Query().Get("last")
		if l := links[last]; l != "" {
			w.Header().Set("Link", l)
		}
		_, _ = w.Write([]byte(pages[last]))
	}))
	t.Cleanup(f.Close)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	for _, tc := range []struct{ query, want, link string }{
		{"", "a,c,d,e", ""},
		{"?n=2", "a,c", "last=c"},
		{"?n=2&last=c", "d,e", ""},
		{"?last=d", "e", ""},
		{"?n=0", "", ""},
		{"?last=z", "", ""},
	} {
		resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/tags/list"+tc.query, nil)
		var list struct{ Tags []string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil {
			t.Fatalf("%s: %d %s", tc.query, resp.StatusCode, body)
		}
		if got := strings.Join(list.Tags, ","); got != tc.want {
			t.Errorf("%s: tags %q, want %q", tc.query, got, tc.want)
		}
		if link := resp.Header.Get("Link"); (tc.link == "") != (link == "") || !strings.Contains(link, tc.link) {
			t.Errorf("%s: Link %q, want one with %q", tc.query, link, tc.link)
		}
	}
	if calls != 2 {
		t.Errorf("upstream tag pages fetched %d times for 6 requests in a row, want 2 (one full list, kept briefly)", calls)
	}
}

func TestNarrowAcceptGetsStoredManifest(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	dimg := mutate.MediaType(randomImage(t, 512, 1), types.DockerManifestSchema2)
	up.push(t, "team/docker", "v1", dimg, nil)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
	want, _ := dimg.Digest()
	// A client that accepts OCI types only still gets the stored Docker
	// schema 2 manifest, with its real type and digest.
	resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/docker/manifests/v1",
		http.Header{"Accept": {string(types.OCIImageIndex) + ", " + string(types.OCIManifestSchema1)}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.String() ||
		resp.Header.Get("Content-Type") != string(types.DockerManifestSchema2) || digest.FromBytes(body).String() != want.String() {
		t.Fatalf("narrow Accept: %d %v", resp.StatusCode, resp.Header)
	}
}
