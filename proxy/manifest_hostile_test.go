package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/proxy/cache"
)

// TestNonJSONManifestIsNotCached: an upstream (or a captive portal in front
// of it) that answers a manifest request with 200 and something that is not
// a JSON manifest gets the client a 502, and nothing is cached: no manifest,
// no tag record that a later outage would serve.
func TestNonJSONManifestIsNotCached(t *testing.T) {
	page := []byte("<html><body>Log in to the network</body></html>")
	for _, tc := range []struct{ name, contentType string }{
		{"html", "text/html; charset=utf-8"},
		{"typed as a manifest", "application/vnd.oci.image.manifest.v1+json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				w.Header().Set("Content-Type", tc.contentType)
				_, _ = w.Write(page)
			}))
			t.Cleanup(f.Close)
			p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
			for _, ref := range []string{"v1", digest.FromBytes(page).String()} {
				resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/"+ref, nil)
				if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "not a JSON manifest") {
					t.Fatalf("%s: %d %s; want 502 saying it is not a manifest", ref, resp.StatusCode, body)
				}
				if strings.Contains(string(body), "answered 502") {
					t.Fatalf("%s: the error claims the upstream answered 502; it answered 200: %s", ref, body)
				}
			}
			if _, err := p.cache.GetTag(testHost, "team/app", "v1"); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("tag recorded for a non-manifest answer: %v", err)
			}
			if _, err := p.cache.GetManifest(testHost, "team/app", digest.FromBytes(page)); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("non-manifest answer cached: %v", err)
			}
		})
	}
}

// TestHeadByDigestRejectsOtherDigest: a HEAD by digest that the upstream
// answers with another digest is not passed on as if it were the one asked
// for.
func TestHeadByDigestRejectsOtherDigest(t *testing.T) {
	asked := "sha256:" + strings.Repeat("1", 64)
	f := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("2", 64))
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", "100")
	}))
	t.Cleanup(f.Close)
	for _, noCache := range []bool{false, true} {
		p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}, noCache: noCache})
		resp, body := p.do(t, http.MethodHead, "/v2/"+testHost+"/team/app/manifests/"+asked, nil)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("cache=%v: HEAD by digest answered with another digest: %d %v %s; want 502",
				!noCache, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
		}
	}
}

// TestHeadWithoutContentTypeIsNotGuessed: a HEAD of a manifest that the
// upstream answers without Content-Type does not go out with a guessed type
// (containerd resolves by HEAD and parses what it fetches next as the type
// the HEAD named); the proxy learns the type with a GET.
func TestHeadWithoutContentTypeIsNotGuessed(t *testing.T) {
	img := randomImage(t, 1024, 1)
	mt, _ := img.MediaType()
	d, _ := img.Digest()
	f := newFakeRegistry(t, img)
	f.headNoType.Store(true)
	for _, noCache := range []bool{false, true} {
		p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}, noCache: noCache})
		for _, ref := range []string{"v1", d.String()} {
			resp, _ := p.do(t, http.MethodHead, "/v2/"+testHost+"/team/app/manifests/"+ref, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != string(mt) ||
				resp.Header.Get("Docker-Content-Digest") != d.String() {
				t.Fatalf("cache=%v: HEAD %s: %d, Content-Type %q, digest %q; want %s, %s",
					!noCache, ref, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), mt, d)
			}
		}
	}
}

// TestSignedSchema1IsRefusedClearly: a signed schema 1 manifest (whose
// digest covers its payload, not the signatures it is served with) is
// refused with a message that says so, not as a digest mismatch.
func TestSignedSchema1IsRefusedClearly(t *testing.T) {
	payload := `{"schemaVersion":1,"name":"team/app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}`
	signed := payload[:len(payload)-1] + `,"signatures":[{"header":{"alg":"ES256"},"signature":"x","protected":"y"}]}`
	f := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
		w.Header().Set("Docker-Content-Digest", digest.FromString(payload).String())
		_, _ = w.Write([]byte(signed))
	}))
	t.Cleanup(f.Close)
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}})
	resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "schema 1") {
		t.Fatalf("signed schema 1: %d %s; want 502 naming schema 1", resp.StatusCode, body)
	}
}

// TestThrottlingPassesRetryAfter: an upstream's 429 reaches the client as
// TOOMANYREQUESTS with its Retry-After, in either form HTTP allows (seconds
// or a date); anything else is not passed on.
func TestThrottlingPassesRetryAfter(t *testing.T) {
	date := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	for _, tc := range []struct{ sent, want string }{
		{"120", "120"},
		{date, date},
		{"soon\r\nX-Evil: 1", ""},
	} {
		f := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				return
			}
			w.Header()["Retry-After"] = []string{tc.sent}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`))
		}))
		p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: f.URL}, noCache: true})
		resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
		f.Close()
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "TOOMANYREQUESTS") {
			t.Fatalf("429 upstream: %d %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("Retry-After"); got != tc.want {
			t.Errorf("upstream Retry-After %q: client got %q, want %q", tc.sent, got, tc.want)
		}
	}
}
