package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// An upstream that redirects to a loopback or link-local address (instance
// metadata, a local daemon's API) must not make the proxy fetch from there
// and hand the answer to the client: by tag, a manifest without a
// Docker-Content-Digest header verifies against whatever bytes came back.
func TestRedirectToLocalAddressIsNotFollowed(t *testing.T) {
	var hits atomic.Int64
	secret := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		_, _ = w.Write([]byte(`{"AccessKeyId":"AKIDEXAMPLE","SecretAccessKey":"local-secret"}`))
	}))
	t.Cleanup(secret.Close)
	port := secret.URL[strings.LastIndex(secret.URL, ":")+1:]
	for _, target := range []string{secret.URL, "http://localhost:" + port} {
		t.Run(target, func(t *testing.T) {
			hits.Store(0)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				http.Redirect(w, r, target+"/latest/meta-data/iam/security-credentials/role", http.StatusTemporaryRedirect)
			}))
			t.Cleanup(up.Close)
			p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL}})
			resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app/manifests/v1", nil)
			if strings.Contains(string(body), "local-secret") {
				t.Fatalf("the proxy served what a local address answered: %d %s", resp.StatusCode, body)
			}
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("redirect to %s answered 200: %s", target, body)
			}
			if n := hits.Load(); n != 0 {
				t.Fatalf("the local address was asked %d times", n)
			}
		})
	}
}

// Whatever name led there, the upstream dialer never connects to a
// link-local address (instance metadata). The check runs before connect, so
// the cases below send nothing.
func TestDialerRefusesMetadataAddresses(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		refuse bool
	}{
		{"169.254.169.254:80", true},
		{"[fe80::1]:443", true},
		{"[fd00:ec2::254]:80", true},
		{"[::ffff:169.254.169.254]:80", true},
		{"127.0.0.1:5000", false},
		{"[::1]:5000", false},
		{"10.0.0.5:5000", false},
		{"140.82.112.34:443", false},
	} {
		err := refuseMetadataAddress("tcp", tc.addr, nil)
		if got := errors.Is(err, errMetadataAddress); got != tc.refuse {
			t.Errorf("%s: refused=%v (%v), want %v", tc.addr, got, err, tc.refuse)
		}
	}
}

// Blob storage behind a registry is reached through presigned URLs (S3's
// X-Amz-Signature and X-Amz-Security-Token, Docker Hub's CDN "verify"): an
// error on the way there must not copy those into the log or the answer.
func TestSignedRedirectURLStaysOutOfErrors(t *testing.T) {
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hang up without an answer: a transport error naming the URL.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(storage.Close)
	const signed = "X-Amz-Security-Token=SESSIONTOKENSECRET&X-Amz-Signature=SIGNATURESECRET"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		http.Redirect(w, r, storage.URL+"/layer?"+signed, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(up.Close)
	// The storage is a configured endpoint, as an operator's local mirror
	// would be, so that the redirect to loopback is followed at all.
	p := startProxy(t, proxyOpts{endpoints: map[string]string{testHost: up.URL, "storage.test": storage.URL}})
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, path := range []string{"/blobs/" + d, "/manifests/v1"} {
		resp, body := p.do(t, http.MethodGet, "/v2/"+testHost+"/team/app"+path, nil)
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("%s: 200 from a storage that hung up", path)
		}
		for _, secret := range []string{"SESSIONTOKENSECRET", "SIGNATURESECRET"} {
			if strings.Contains(string(body), secret) {
				t.Errorf("%s: the answer carries the signed URL: %s", path, body)
			}
			if strings.Contains(p.logs.String(), secret) {
				t.Errorf("%s: the log carries the signed URL:\n%s", path, p.logs.String())
			}
		}
	}
}
