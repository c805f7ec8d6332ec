package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

const (
	// maxTagListSize bounds a whole upstream tag list, all pages together
	// (it is held in memory).
	maxTagListSize = 16 << 20
	// maxTagPages bounds how many upstream pages make one full list.
	maxTagPages = 100
	// tagListTTL is how long a full upstream tag list answers paginated
	// requests before it is fetched again.
	tagListTTL = 15 * time.Second
	// tagListTimeout bounds fetching one full tag list upstream.
	tagListTimeout = 2 * time.Minute
)

// tagService answers tag list requests from the upstream's full list,
// held briefly for pagination. Nothing of it is written to the cache.
type tagService struct {
	upstreams *upstreams
	// lists holds full upstream tag lists briefly, keyed by the
	// authenticated client (never shared between logins).
	lists *gocache.Cache
	// flight merges concurrent fetches of one full tag list.
	flight singleflight.Group
}

func newTagService(u *upstreams) *tagService {
	return &tagService{upstreams: u, lists: gocache.New(tagListTTL, time.Minute)}
}

// serve answers GET of a repository's tag list. The proxy fetches the
// whole list upstream (following the upstream's Link pages), sorts it, and
// applies n and last itself, so pagination behaves per the distribution
// spec whatever the upstream's own pagination does; a Link header names the
// next page through the proxy, in the routing style the client used. The
// full list is kept for a few seconds so a client walking pages does not
// refetch it for every page.
func (ts *tagService) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	in := r.URL.Query()
	n := -1
	if v := in.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			writeError(w, errcode.ErrorCodePaginationNumberInvalid.WithMessage("n must be a non-negative integer"))
			return
		}
		n = i
	}
	last := in.Get("last")
	tags, err := ts.list(r.Context(), rt)
	if err != nil {
		failUpstream(w, r, err, errcode.ErrorCodeNameUnknown)
		return
	}
	start := 0
	if last != "" {
		start = sort.Search(len(tags), func(i int) bool { return tags[i] > last })
	}
	page := tags[start:]
	more := false
	if n >= 0 && n < len(page) {
		page, more = page[:n], true
	}
	if n == 0 {
		more = false
	}
	body, _ := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.clientName, append([]string{}, page...)})
	if more && len(page) > 0 {
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}
		if rt.style == styleNS {
			q.Set("ns", rt.ns)
		}
		w.Header().Set("Link", "<"+rt.clientTagsPath()+"?"+q.Encode()+`>; rel="next"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// tagList returns the repository's full, sorted tag list.
func (ts *tagService) list(ctx context.Context, rt *route) ([]string, error) {
	c, err := ts.upstreams.client(ctx, rt.name)
	if err != nil {
		return nil, err
	}
	// Keyed by the authenticated client, so a list fetched with one login
	// never answers for another.
	key := c.key
	if v, ok := ts.lists.Get(key); ok {
		return v.([]string), nil
	}
	// One fetch for all concurrent requests (the list is held in memory
	// whole), which no single client's hangup cancels.
	ch := ts.flight.DoChan(key, func() (any, error) {
		if v, ok := ts.lists.Get(key); ok {
			return v, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tagListTimeout)
		defer cancel()
		all, err := ts.fetchList(fctx, c, rt)
		if err != nil {
			return nil, err
		}
		ts.lists.SetDefault(key, all)
		return all, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]string), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetchTagList follows the upstream's pages and returns the full, sorted
// list.
func (ts *tagService) fetchList(ctx context.Context, c *repoClient, rt *route) ([]string, error) {
	var all []string
	q := url.Values{}
	budget := int64(maxTagListSize)
	for page := 0; ; page++ {
		if page == maxTagPages {
			return nil, badUpstream(rt.name.Host, errcode.ErrorCodeUnknown, fmt.Sprintf("upstream tag list has more than %d pages", maxTagPages))
		}
		tags, next, n, err := ts.page(ctx, c, rt, q, budget)
		if err != nil {
			return nil, err
		}
		budget -= n
		all = append(all, tags...)
		if next == nil {
			break
		}
		q = next
	}
	sort.Strings(all)
	return dedupe(all), nil
}

// tagPage fetches one upstream page, at most budget bytes, and returns its
// tags, the query of the next page, if any, and the page's size.
func (ts *tagService) page(ctx context.Context, c *repoClient, rt *route, q url.Values, budget int64) ([]string, url.Values, int64, error) {
	resp, err := c.do(ctx, http.MethodGet, rt, q, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, 0, readUpstreamError(rt.name.Host, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, budget+1))
	if err != nil || int64(len(data)) > budget {
		return nil, nil, 0, badUpstream(rt.name.Host, errcode.ErrorCodeUnknown,
			fmt.Sprintf("upstream tag list unreadable or too large (limit %d bytes over all pages)", maxTagListSize))
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, nil, 0, badUpstream(rt.name.Host, errcode.ErrorCodeUnknown, "upstream tag list is not valid JSON")
	}
	next := nextPage(resp.Header.Get("Link"))
	if next != nil && next.Get("last") == q.Get("last") {
		next = nil // an upstream that does not advance would loop forever
	}
	return list.Tags, next, int64(len(data)), nil
}

var linkNext = regexp.MustCompile(`<([^>]*)>\s*;\s*rel="?next"?`)

// nextPage extracts n and last from an upstream's next-page Link.
func nextPage(link string) url.Values {
	m := linkNext.FindStringSubmatch(link)
	if m == nil {
		return nil
	}
	u, err := url.Parse(m[1])
	if err != nil {
		return nil
	}
	q := url.Values{}
	for _, k := range []string{"n", "last"} {
		if v := u.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	if q.Get("last") == "" {
		return nil
	}
	return q
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, v := range sorted {
		if i == 0 || v != sorted[i-1] {
			out = append(out, v)
		}
	}
	return out
}
