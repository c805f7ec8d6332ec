package cache

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// The usage doc.go prescribes for the HTTP layer: stream with io.Copy and
// abort the response on a read error. A client of a corrupt blob must see a
// broken response, never a complete body that ends cleanly.
func TestHTTPResponseAbortedOnBadContent(t *testing.T) {
	u := newUpstream(t)
	data := randomBytes(t, 2<<20)
	d := u.add(data)
	u.setFault("corrupt")
	c := openCache(t, t.TempDir(), Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd, err := c.Fetch(r.Context(), host, repo, d, -1, u.source(repo, d))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer rd.Close()
		if n := rd.Size(); n >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		if _, err := io.Copy(w, rd); err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	defer srv.Close()

	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("client read %d bytes, err %v; want a broken response", len(got), err)
	}
	if len(got) >= len(data) {
		t.Fatalf("client received all %d bytes of a corrupt blob", len(got))
	}
}
