package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// maxTagListSize bounds a tag list read from upstream.
const maxTagListSize = 16 << 20

// serveTags answers GET of a repository's tag list, passing n and last
// through and rewriting the upstream's pagination Link into this proxy's
// URL space. Tag lists are not cached: they change, and they are cheap.
func (s *Server) serveTags(w http.ResponseWriter, r *http.Request, rt *route) {
	q := url.Values{}
	in := r.URL.Query()
	if n := in.Get("n"); n != "" {
		if v, err := strconv.Atoi(n); err != nil || v < 0 {
			writeError(w, errcode.ErrorCodePaginationNumberInvalid.WithMessage("n must be a non-negative integer"))
			return
		}
		q.Set("n", n)
	}
	if last := in.Get("last"); last != "" {
		q.Set("last", last)
	}
	resp, err := s.upstreamRequest(r.Context(), http.MethodGet, rt, q, http.Header{"Accept": {"application/json"}})
	if err != nil {
		s.failUpstream(w, r, err, errcode.ErrorCodeNameUnknown)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.failUpstream(w, r, readUpstreamError(rt.host, resp), errcode.ErrorCodeNameUnknown)
		return
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTagListSize+1))
	if err != nil || len(data) > maxTagListSize {
		s.failUpstream(w, r, badUpstream(rt.host, errcode.ErrorCodeUnknown, "upstream tag list unreadable or too large"), errcode.ErrorCodeNameUnknown)
		return
	}
	var list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		s.failUpstream(w, r, badUpstream(rt.host, errcode.ErrorCodeUnknown, "upstream tag list is not valid JSON"), errcode.ErrorCodeNameUnknown)
		return
	}
	// The client knows the repository by the name it asked for.
	list.Name = rt.clientName
	if list.Tags == nil {
		list.Tags = []string{}
	}
	out, _ := json.Marshal(list)
	if link := rewriteLink(resp.Header.Get("Link"), rt); link != "" {
		w.Header().Set("Link", link)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

var linkNext = regexp.MustCompile(`<([^>]*)>\s*;\s*rel="?next"?`)

// rewriteLink maps the upstream's next-page Link to the same page through
// the proxy, in the routing style the client used. Only n and last are
// carried over.
func rewriteLink(link string, rt *route) string {
	m := linkNext.FindStringSubmatch(link)
	if m == nil {
		return ""
	}
	u, err := url.Parse(m[1])
	if err != nil {
		return ""
	}
	q := url.Values{}
	for _, k := range []string{"n", "last"} {
		if v := u.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	if rt.style == styleNS {
		q.Set("ns", rt.ns)
	}
	return "<" + rt.clientTagsPath() + "?" + q.Encode() + `>; rel="next"`
}
