package authz

import "testing"

// FuzzAuthorize feeds the decoder and the policy arbitrary requests. The
// seeds are the captured engine requests (testdata/engine/*) plus a few
// hostile forms; `go test` runs them, `go test -fuzz FuzzAuthorize
// ./authz` explores further. Properties: no panic; a refusal always says
// why and names a rule; and with an empty allowlist and every gate closed,
// no request that matches a row of the rules table is ever allowed.
func FuzzAuthorize(f *testing.F) {
	for _, engine := range engineDirs(f) {
		for _, name := range fixtureNames(f, engine) {
			r := loadFixture(f, engine, name)
			f.Add(r.RequestMethod, r.RequestURI, string(r.RequestBody), r.RequestHeaders["Content-Type"], r.RequestHeaders["Content-Length"])
		}
	}
	f.Add("POST", "http://x/v1.41//images/%63reate?fromImage=a&fromImage=b", "", "", "0")
	f.Add("POST", "/containers/create", `{"Image":"a","IMAGE":"b"}`, "application/json", "26")
	f.Add("POST", "/v9/images/create?fromImage=127.0.0.1:5000/ghcr.io", "", "", "")

	closed := mustPolicy(f, Options{Proxy: "127.0.0.1:5000"})
	open := mustPolicy(f, Options{Proxy: "127.0.0.1:5000", Public: true}, "docker.io", "ghcr.io/org/*")
	f.Fuzz(func(t *testing.T, method, uri, body, ct, cl string) {
		h := map[string]string{}
		if ct != "" {
			h["Content-Type"] = ct
		}
		if cl != "" {
			h["Content-Length"] = cl
		}
		r := &Request{RequestMethod: method, RequestURI: uri, RequestBody: []byte(body), RequestHeaders: h}
		for _, p := range []*Policy{closed, open} {
			d := p.Authorize(r)
			if !d.Allowed && (d.Rule == "" || d.Reason == "") {
				t.Fatalf("refusal without rule or reason: %+v", d)
			}
		}
		d := closed.Authorize(r)
		if c, err := Decode(r); err == nil && match(c) != nil && d.Allowed {
			t.Fatalf("%s %s allowed with an empty allowlist and every gate closed: %+v", method, uri, d)
		}
	})
}
