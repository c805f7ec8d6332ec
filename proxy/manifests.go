package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/spacelift-io/tollgate/proxy/cache"
)

// manifestFlightTimeout bounds a shared manifest request, which no single
// client's hangup cancels.
const manifestFlightTimeout = 2 * time.Minute

// manifestService answers manifest requests, by digest or by tag.
//
// By digest, it looks in one order: the cache for this repository, the
// cache for another repository once the upstream confirmed this one has it
// (cache.AdmitManifest), the upstream. By tag, the upstream is always asked
// first (a HEAD: cheap, and not counted against Docker Hub's pull limit);
// the cached manifest serves when the digest is unchanged, and also when
// the upstream is unreachable or answers 429/5xx. What the upstream sends
// is verified and written to the cache in one place (store), and a tag
// record in one other (recordTag).
type manifestService struct {
	upstreams *upstreams
	cache     *cache.Cache // nil: nothing is cached
	metrics   *metrics
	log       *slog.Logger
	// heads and gets merge concurrent identical upstream HEADs and GETs
	// (Docker Hub counts each manifest GET as a pull).
	heads, gets singleflight.Group
}

// manifest is a manifest ready to serve.
type manifest struct {
	digest    digest.Digest
	mediaType string
	// declaredType is the upstream's own Content-Type for a HEAD, "" when
	// it sent none (mediaType is then a guess).
	declaredType string
	data         []byte // nil for a HEAD answered from upstream headers
	size         int64
	// fromCache: read from the cache; stored: fetched from the upstream and
	// stored in the cache by this request.
	fromCache, stored bool
}

// serve answers GET and HEAD of a manifest by tag or digest.
func (ms *manifestService) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	ri := infoFrom(r.Context())
	accept := upstreamAccept(r.Header.Values("Accept"))
	var (
		m   *manifest
		err error
	)
	if rt.byDigest() {
		m, err = ms.byDigest(r.Context(), r.Method, rt, accept, ri)
	} else {
		m, err = ms.byTag(r.Context(), r.Method, rt, accept, ri)
	}
	if err != nil {
		failUpstream(w, r, err, errcode.ErrorCodeManifestUnknown)
		return
	}
	h := w.Header()
	h.Set("Content-Type", m.mediaType)
	h.Set("Docker-Content-Digest", m.digest.String())
	h.Set("Etag", `"`+m.digest.String()+`"`)
	h.Set("Content-Length", strconv.FormatInt(m.size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		n, _ := w.Write(m.data)
		src := "upstream"
		if ri.cache == "hit" || ri.cache == "stale" || ri.cache == "link" {
			src = "cache"
		}
		ms.metrics.bytesServed.WithLabelValues(src).Add(float64(n))
	}
}

// byDigest: the cache for this repository, the cache for another one after
// the upstream confirmed this one has it, the upstream.
func (ms *manifestService) byDigest(ctx context.Context, method string, rt *route, accept []string, ri *requestInfo) (*manifest, error) {
	if ms.cache == nil {
		return ms.fromUpstream(ctx, method, rt, accept)
	}
	if cm, err := ms.cache.GetManifest(rt.name.Host, rt.name.Path, rt.digest); err == nil {
		ms.metrics.cacheResult(ri, "manifest", "hit")
		return cachedManifest(cm), nil
	}
	if m, err := ms.admit(ctx, rt, accept); err != nil || m != nil {
		if m != nil {
			ms.metrics.cacheResult(ri, "manifest", "link")
		}
		return m, err
	}
	ms.metrics.cacheResult(ri, "manifest", "miss")
	return ms.fromUpstream(ctx, method, rt, accept)
}

// admit serves a manifest cached for another repository once the upstream
// confirmed (a HEAD with this repository's credentials) that this one has
// it (cache.AdmitManifest). It returns nil, nil when the cache cannot serve
// it; the upstream's refusal is an error.
func (ms *manifestService) admit(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	err := ms.cache.AdmitManifest(ctx, rt.name.Host, rt.name.Path, rt.digest, func(ctx context.Context) (string, error) {
		// By digest, head answers only for rt.digest itself.
		hm, err := ms.head(ctx, rt, accept)
		if err != nil {
			return "", err
		}
		return hm.declaredType, nil
	})
	switch {
	case errors.Is(err, cache.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	cm, err := ms.cache.GetManifest(rt.name.Host, rt.name.Path, rt.digest)
	if err != nil {
		return nil, nil
	}
	return cachedManifest(cm), nil
}

// byTag: the upstream's HEAD says what the tag points to now; the cache
// serves that digest if it has it for this repository, else the upstream.
// An upstream that cannot answer the HEAD leaves the last recorded digest to
// serve. Without a record of the tag, a GET asks once (GET) instead of HEAD
// then GET.
func (ms *manifestService) byTag(ctx context.Context, method string, rt *route, accept []string, ri *requestInfo) (*manifest, error) {
	if ms.cache == nil {
		return ms.fromUpstream(ctx, method, rt, accept)
	}
	tag, tagErr := ms.cache.GetTag(rt.name.Host, rt.name.Path, rt.reference)
	var (
		m   *manifest
		err error
	)
	if tagErr != nil && method == http.MethodGet {
		ms.metrics.cacheResult(ri, "manifest", "miss")
		m, err = ms.fetch(ctx, rt, accept)
	} else {
		m, err = ms.revalidate(ctx, method, rt, accept, ri, tag, tagErr == nil)
	}
	if err != nil {
		return nil, err
	}
	if m.stored || (m.fromCache && (tagErr != nil || tag.Digest != m.digest)) {
		ms.recordTag(rt, m)
	}
	return m, nil
}

// revalidate asks the upstream what the tag points to (HEAD) and returns
// that manifest, from the cache when it has it.
func (ms *manifestService) revalidate(ctx context.Context, method string, rt *route, accept []string, ri *requestInfo, tag cache.Tag, recorded bool) (*manifest, error) {
	hm, err := ms.head(ctx, rt, accept)
	if err != nil {
		if recorded && serveStale(err) {
			return ms.stale(rt, tag, accept, ri, err)
		}
		return nil, err
	}
	if hm.digest != "" {
		if cm, err := ms.cache.GetManifest(rt.name.Host, rt.name.Path, hm.digest); err == nil {
			ms.metrics.cacheResult(ri, "manifest", "hit")
			return cachedManifest(cm), nil
		}
	}
	ms.metrics.cacheResult(ri, "manifest", "miss")
	if method == http.MethodHead && !hm.untyped() {
		return hm, nil
	}
	return ms.fetch(ctx, rt, accept)
}

// stale serves the tag's last recorded manifest when the upstream could not
// revalidate it. The tag's last answer may have been for a client that
// accepted other types (a manifest list rather than the image manifest a
// narrow client gets): it is served only to a client the upstream could
// have given it to; otherwise the client gets the upstream's error.
func (ms *manifestService) stale(rt *route, tag cache.Tag, accept []string, ri *requestInfo, upstreamErr error) (*manifest, error) {
	cm, err := ms.cache.GetManifest(rt.name.Host, rt.name.Path, tag.Digest)
	if err != nil || !acceptable(cm.MediaType, accept) {
		return nil, upstreamErr
	}
	ms.log.Warn("upstream failed to revalidate a tag; serving the cached manifest",
		"host", rt.name.Host, "repository", rt.name.Path, "tag", rt.reference,
		"digest", tag.Digest, "cached_at", tag.FetchedAt, "error", upstreamErr)
	ms.metrics.staleServes.WithLabelValues(ms.metrics.host(rt.name.Host)).Inc()
	ms.metrics.cacheResult(ri, "manifest", "stale")
	return cachedManifest(cm), nil
}

// serveStale reports whether an upstream failure allows serving a cached tag:
// unreachable, throttling (429) or failing (5xx), or a temporary outage of
// the credential source (ECR throttled or down); never a refusal (401, 403),
// a lasting credential failure or a not-found, which the client must see.
func serveStale(err error) bool {
	var un *unreachableError
	if errors.As(err, &un) {
		return true
	}
	var ce *credentialError
	if errors.As(err, &ce) {
		return ce.temporary()
	}
	var ue *upstreamError
	return errors.As(err, &ue) && ue.temporary()
}

// recordTag records what the tag points to, after its manifest is in the
// cache.
func (ms *manifestService) recordTag(rt *route, m *manifest) {
	err := ms.cache.PutTag(rt.name.Host, rt.name.Path, rt.reference, cache.Tag{Digest: m.digest, MediaType: m.mediaType, FetchedAt: time.Now().UTC()})
	if err != nil {
		ms.log.Warn("could not record tag in cache", "host", rt.name.Host, "repository", rt.name.Path, "tag", rt.reference, "error", err)
	}
}

func cachedManifest(cm cache.Manifest) *manifest {
	return &manifest{digest: cm.Digest, mediaType: cm.MediaType, data: cm.Data, size: int64(len(cm.Data)), fromCache: true}
}

// fromUpstream answers from the upstream alone: a HEAD for a HEAD (see
// headForClient), a GET (verified and cached) for a GET.
func (ms *manifestService) fromUpstream(ctx context.Context, method string, rt *route, accept []string) (*manifest, error) {
	if method == http.MethodHead {
		return ms.headForClient(ctx, rt, accept)
	}
	return ms.fetch(ctx, rt, accept)
}

// headForClient is head for an answer that goes to the client as it is:
// when the upstream's HEAD named no media type, a GET learns it, because a
// client resolving by HEAD (containerd) parses what it fetches next as the
// type the HEAD named, and a guess may be wrong.
func (ms *manifestService) headForClient(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	m, err := ms.head(ctx, rt, accept)
	if err != nil || !m.untyped() {
		return m, err
	}
	return ms.fetch(ctx, rt, accept)
}

// untyped reports whether m is an upstream HEAD answer without a media type
// of its own (mediaType is then a guess).
func (m *manifest) untyped() bool { return m.data == nil && m.declaredType == "" }

// head asks the upstream for the manifest's headers; concurrent identical
// requests share one upstream HEAD.
func (ms *manifestService) head(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	return shared(ctx, &ms.heads, rt, accept, ms.headOnce)
}

// fetch GETs, verifies and caches the manifest; concurrent identical
// requests share one upstream GET.
func (ms *manifestService) fetch(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	return shared(ctx, &ms.gets, rt, accept, ms.fetchOnce)
}

// shared runs do once for all concurrent identical requests, detached from
// any one client (bounded by manifestFlightTimeout).
func shared(ctx context.Context, g *singleflight.Group, rt *route, accept []string,
	do func(context.Context, *route, []string) (*manifest, error)) (*manifest, error) {
	key := rt.name.String() + ":" + rt.reference + " " + strings.Join(accept, ",")
	ch := g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), manifestFlightTimeout)
		defer cancel()
		return do(fctx, rt, accept)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*manifest), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (ms *manifestService) headOnce(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	resp, err := ms.upstreams.request(ctx, http.MethodHead, rt, nil, http.Header{"Accept": accept})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readUpstreamError(rt.name.Host, resp)
	}
	ct := resp.Header.Get("Content-Type")
	m := &manifest{mediaType: mediaTypeOf(ct, nil), declaredType: declaredMediaType(ct), size: resp.ContentLength}
	if dg := resp.Header.Get("Docker-Content-Digest"); dg != "" {
		d, err := digest.Parse(dg)
		if err != nil {
			return nil, &upstreamError{Host: rt.name.Host, Status: http.StatusBadGateway, Unusable: true, Errors: errcode.Errors{
				errcode.ErrorCodeDigestInvalid.WithMessage("upstream sent an invalid Docker-Content-Digest header")}}
		}
		if rt.byDigest() && d != rt.digest {
			return nil, badUpstream(rt.name.Host, errcode.ErrorCodeDigestInvalid, fmt.Sprintf("upstream answered with manifest %s for %s", d, rt.digest))
		}
		m.digest = d
	} else if rt.byDigest() {
		m.digest = rt.digest
	}
	if m.digest == "" || m.size < 0 {
		// Without a digest or size the client cannot use the answer; a
		// GET finds both.
		return ms.fetch(ctx, rt, accept)
	}
	return m, nil
}

// fetchOnce GETs the manifest, verifies it against the digest asked for
// (by digest) or the one the upstream announced (by tag), and stores it.
func (ms *manifestService) fetchOnce(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	resp, err := ms.upstreams.request(ctx, http.MethodGet, rt, nil, http.Header{"Accept": accept})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readUpstreamError(rt.name.Host, resp)
	}
	// The cache's manifest bound (distribution's and containerd's 4 MiB)
	// bounds what is read, cached or not.
	data, err := io.ReadAll(io.LimitReader(resp.Body, cache.MaxManifestSize+1))
	ms.metrics.upstreamBytes.WithLabelValues(ms.metrics.host(rt.name.Host)).Add(float64(len(data)))
	if err != nil {
		return nil, &unreachableError{Host: rt.name.Host, Err: fmt.Errorf("reading manifest: %w", err)}
	}
	m, err := verifyManifest(rt, resp, data)
	if err != nil {
		return nil, err
	}
	ms.store(rt, m)
	return m, nil
}

// verifyManifest checks an upstream's manifest answer: whole, a JSON
// manifest (not signed schema 1), and matching the digest asked for (by
// digest) or the one the upstream announced (by tag).
func verifyManifest(rt *route, resp *http.Response, data []byte) (*manifest, error) {
	host := rt.name.Host
	if len(data) > cache.MaxManifestSize {
		return nil, badUpstream(host, errcode.ErrorCodeManifestInvalid, fmt.Sprintf("upstream manifest is larger than %d bytes", cache.MaxManifestSize))
	}
	if resp.ContentLength >= 0 && int64(len(data)) != resp.ContentLength {
		return nil, badUpstream(host, errcode.ErrorCodeManifestInvalid, "upstream manifest response was truncated")
	}
	if !isJSONObject(data) {
		// A captive portal's login page, a CDN's error page: whatever it
		// hashes to, it is not a manifest, and caching it would serve it
		// for this tag during the next outage.
		return nil, badUpstream(host, errcode.ErrorCodeManifestInvalid,
			fmt.Sprintf("upstream answered with something that is not a JSON manifest (Content-Type %q)", resp.Header.Get("Content-Type")))
	}
	if signedSchema1(resp.Header.Get("Content-Type"), data) {
		return nil, badUpstream(host, errcode.ErrorCodeManifestInvalid,
			"the upstream has only a signed schema 1 manifest for this reference (deprecated; its digest does not cover the signatures it comes with, so it cannot be verified); push the image again with a current client (Docker schema 2 or OCI), or pull it from the registry directly")
	}
	want := rt.digest
	if hdr := resp.Header.Get("Docker-Content-Digest"); hdr != "" {
		d, err := digest.Parse(hdr)
		if err != nil {
			return nil, badUpstream(host, errcode.ErrorCodeDigestInvalid, "upstream sent an invalid Docker-Content-Digest header")
		}
		if want != "" && d != want {
			return nil, badUpstream(host, errcode.ErrorCodeDigestInvalid, fmt.Sprintf("upstream answered with manifest %s for %s", d, want))
		}
		want = d
	}
	if want == "" {
		want = digest.FromBytes(data)
	}
	if !want.Algorithm().Available() || want.Algorithm().FromBytes(data) != want {
		return nil, badUpstream(host, errcode.ErrorCodeDigestInvalid, fmt.Sprintf("upstream manifest does not match its digest %s", want))
	}
	mt := mediaTypeOf(resp.Header.Get("Content-Type"), data)
	return &manifest{digest: want, mediaType: mt, data: data, size: int64(len(data))}, nil
}

// store puts a verified manifest from the upstream into the cache: the one
// place the manifest service writes manifests to it.
func (ms *manifestService) store(rt *route, m *manifest) {
	if ms.cache == nil {
		return
	}
	if err := ms.cache.PutManifest(rt.name.Host, rt.name.Path, m.digest, m.mediaType, m.data); err != nil {
		ms.log.Warn("could not cache manifest", "host", rt.name.Host, "repository", rt.name.Path, "digest", m.digest, "error", err)
		return
	}
	m.stored = true
}
