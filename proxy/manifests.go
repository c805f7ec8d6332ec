package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/proxy/cache"
)

// modernAccept is added to every upstream manifest request after what the
// client asked for. A registry that has only a Docker schema 2 manifest and
// is asked for OCI types alone would otherwise convert it to signed schema 1
// (whose digest is not the content's); registries answer with the manifest
// as stored, and the client gets it with its real Content-Type, as Docker Hub
// and distribution serve content they have in no other form.
//
// The Docker manifest list is the exception: a registry does have another
// form of it for a client that names manifest types but no index type (the
// linux/amd64 image manifest, which distribution and Docker Hub pick), so it
// is added only for a client that accepts indexes or names no manifest type
// at all.
var modernAccept = []string{
	mediaTypeOCIIndex,
	"application/vnd.oci.image.manifest.v1+json",
	mediaTypeDockerList,
	"application/vnd.docker.distribution.manifest.v2+json",
}

const (
	mediaTypeOCIIndex   = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestTypes are the manifest and index media types a client may name.
var manifestTypes = map[string]bool{
	mediaTypeOCIIndex:                                           true,
	mediaTypeDockerList:                                         true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.v1+json":      true,
	"application/vnd.docker.distribution.manifest.v1+prettyjws": true,
	"application/vnd.oci.artifact.manifest.v1+json":             true,
}

// maxManifestSize bounds what is read from an upstream manifest response.
const maxManifestSize = cache.MaxManifestSize

// upstreamAccept is the client's Accept list (passed through, in its order)
// followed by the modern manifest types it did not name.
func upstreamAccept(client []string) []string {
	out := make([]string, 0, len(client)+len(modernAccept))
	seen := map[string]bool{}
	for _, v := range client {
		for _, part := range strings.Split(v, ",") {
			mt := strings.TrimSpace(part)
			base, _, _ := strings.Cut(mt, ";")
			base = strings.TrimSpace(base)
			if base == "" || seen[base] {
				continue
			}
			seen[base] = true
			out = append(out, mt)
		}
	}
	namesManifest := false
	for base := range seen {
		namesManifest = namesManifest || manifestTypes[base]
	}
	namesIndex := seen[mediaTypeOCIIndex] || seen[mediaTypeDockerList]
	for _, mt := range modernAccept {
		if seen[mt] || (mt == mediaTypeDockerList && namesManifest && !namesIndex) {
			continue
		}
		out = append(out, mt)
	}
	return out
}

// acceptable reports whether a cached manifest of mediaType may answer a
// request sent upstream with accept (an upstreamAccept list). Only an index
// can be wrong: a registry gives a client that does not accept it the
// platform's image manifest instead. Other types are served whatever the
// Accept, as registries serve content they have in no other form.
func acceptable(mediaType string, accept []string) bool {
	if mediaType != mediaTypeOCIIndex && mediaType != mediaTypeDockerList {
		return true
	}
	for _, a := range accept {
		base, _, _ := strings.Cut(a, ";")
		base = strings.TrimSpace(base)
		if base == mediaType || base == "*/*" {
			return true
		}
	}
	return false
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
}

// serveManifest answers GET and HEAD of a manifest by tag or digest.
//
// By digest: served from the cache when it holds it for this repository;
// when it holds it for another repository only, the upstream confirms (HEAD
// with this repository's credentials) before it is linked and served;
// otherwise fetched, verified, cached. By tag: always revalidated with a HEAD
// upstream (cheap, and not counted against Docker Hub's pull limit); the
// cached manifest serves when the digest is unchanged, and also when the
// upstream is unreachable or answers 429/5xx.
func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request, rt *route) {
	ri := infoFrom(r.Context())
	accept := upstreamAccept(r.Header.Values("Accept"))
	var (
		m   *manifest
		err error
	)
	if rt.byDigest() {
		m, err = s.manifestByDigest(r.Context(), r.Method, rt, accept, ri)
	} else {
		m, err = s.manifestByTag(r.Context(), r.Method, rt, accept, ri)
	}
	if err != nil {
		s.failUpstream(w, r, err, errcode.ErrorCodeManifestUnknown)
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
		s.metrics.bytesServed.WithLabelValues(src).Add(float64(n))
	}
}

func (s *Server) manifestByDigest(ctx context.Context, method string, rt *route, accept []string, ri *requestInfo) (*manifest, error) {
	if s.cache != nil {
		if cm, err := s.cache.GetManifest(rt.name.Host, rt.name.Path, rt.digest); err == nil {
			s.cacheResult(ri, "manifest", "hit")
			return cachedManifest(cm), nil
		}
		if s.cache.Exists(rt.digest) {
			// Cached for another repository: this one must prove access.
			hm, err := s.headManifest(ctx, rt, accept)
			if err != nil {
				return nil, err
			}
			if hm.digest == rt.digest {
				if err := s.cache.LinkManifest(rt.name.Host, rt.name.Path, rt.digest, hm.declaredType); err == nil {
					if cm, err := s.cache.GetManifest(rt.name.Host, rt.name.Path, rt.digest); err == nil {
						s.cacheResult(ri, "manifest", "link")
						return cachedManifest(cm), nil
					}
				}
			}
		}
		s.cacheResult(ri, "manifest", "miss")
	}
	if method == http.MethodHead {
		return s.headManifestForClient(ctx, rt, accept)
	}
	return s.fetchManifest(ctx, rt, accept)
}

func (s *Server) manifestByTag(ctx context.Context, method string, rt *route, accept []string, ri *requestInfo) (*manifest, error) {
	if s.cache == nil {
		if method == http.MethodHead {
			return s.headManifestForClient(ctx, rt, accept)
		}
		return s.fetchManifest(ctx, rt, accept)
	}
	tag, tagErr := s.cache.GetTag(rt.name.Host, rt.name.Path, rt.reference)
	if tagErr != nil && method == http.MethodGet {
		// Nothing cached to revalidate: one GET instead of HEAD + GET.
		s.cacheResult(ri, "manifest", "miss")
		return s.fetchManifest(ctx, rt, accept)
	}
	hm, err := s.headManifest(ctx, rt, accept)
	if err != nil {
		if tagErr == nil && serveStale(err) {
			// The tag's last answer may have been for a client that
			// accepted other types (a manifest list rather than the image
			// manifest a narrow client gets): serve it only to a client
			// the upstream could have given it to.
			if cm, cerr := s.cache.GetManifest(rt.name.Host, rt.name.Path, tag.Digest); cerr == nil && acceptable(cm.MediaType, accept) {
				s.log.Warn("upstream failed to revalidate a tag; serving the cached manifest",
					"host", rt.name.Host, "repository", rt.name.Path, "tag", rt.reference,
					"digest", tag.Digest, "cached_at", tag.FetchedAt, "error", err)
				s.metrics.staleServes.WithLabelValues(s.metrics.host(rt.name.Host)).Inc()
				s.cacheResult(ri, "manifest", "stale")
				return cachedManifest(cm), nil
			}
		}
		return nil, err
	}
	if hm.digest != "" {
		if cm, err := s.cache.GetManifest(rt.name.Host, rt.name.Path, hm.digest); err == nil {
			if tagErr != nil || tag.Digest != hm.digest {
				s.recordTag(rt, cm.Digest, cm.MediaType)
			}
			s.cacheResult(ri, "manifest", "hit")
			return cachedManifest(cm), nil
		}
	}
	s.cacheResult(ri, "manifest", "miss")
	if method == http.MethodHead && !hm.untyped() {
		return hm, nil
	}
	m, err := s.fetchManifest(ctx, rt, accept)
	if err != nil {
		return nil, err
	}
	return m, nil
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

func (s *Server) recordTag(rt *route, d digest.Digest, mediaType string) {
	err := s.cache.PutTag(rt.name.Host, rt.name.Path, rt.reference, cache.Tag{Digest: d, MediaType: mediaType, FetchedAt: time.Now().UTC()})
	if err != nil {
		s.log.Warn("could not record tag in cache", "host", rt.name.Host, "repository", rt.name.Path, "tag", rt.reference, "error", err)
	}
}

func (s *Server) cacheResult(ri *requestInfo, kind, result string) {
	ri.cache = result
	s.metrics.cacheResults.WithLabelValues(kind, result).Inc()
}

func cachedManifest(cm cache.Manifest) *manifest {
	return &manifest{digest: cm.Digest, mediaType: cm.MediaType, data: cm.Data, size: int64(len(cm.Data))}
}

// headManifest asks the upstream for the manifest's headers; concurrent
// identical requests share one upstream HEAD.
func (s *Server) headManifest(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	return s.sharedManifest(ctx, http.MethodHead, rt, accept, s.headManifestOnce)
}

// headManifestForClient is headManifest for an answer that goes to the
// client as it is: when the upstream's HEAD named no media type, a GET
// learns it, because a client resolving by HEAD (containerd) parses what it
// fetches next as the type the HEAD named, and a guess may be wrong.
func (s *Server) headManifestForClient(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	m, err := s.headManifest(ctx, rt, accept)
	if err != nil || !m.untyped() {
		return m, err
	}
	return s.fetchManifest(ctx, rt, accept)
}

// untyped reports whether m is an upstream HEAD answer without a media type
// of its own (mediaType is then a guess).
func (m *manifest) untyped() bool { return m.data == nil && m.declaredType == "" }

// fetchManifest GETs, verifies and caches the manifest; concurrent identical
// requests share one upstream GET (Docker Hub counts each manifest GET as a
// pull).
func (s *Server) fetchManifest(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	return s.sharedManifest(ctx, http.MethodGet, rt, accept, s.fetchManifestOnce)
}

// manifestFlightTimeout bounds a shared manifest request, which no single
// client's hangup cancels.
const manifestFlightTimeout = 2 * time.Minute

func (s *Server) sharedManifest(ctx context.Context, method string, rt *route, accept []string,
	do func(context.Context, *route, []string) (*manifest, error)) (*manifest, error) {
	key := method + " " + rt.name.Host + "/" + rt.name.Path + ":" + rt.reference + " " + strings.Join(accept, ",")
	ch := s.manifestFlight.DoChan(key, func() (any, error) {
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

func (s *Server) headManifestOnce(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	resp, err := s.upstreamRequest(ctx, http.MethodHead, rt, nil, http.Header{"Accept": accept})
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
		return s.fetchManifest(ctx, rt, accept)
	}
	return m, nil
}

// fetchManifestOnce GETs the manifest, verifies it against the digest asked
// for (by digest) or the one the upstream announced (by tag), and caches it.
func (s *Server) fetchManifestOnce(ctx context.Context, rt *route, accept []string) (*manifest, error) {
	resp, err := s.upstreamRequest(ctx, http.MethodGet, rt, nil, http.Header{"Accept": accept})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readUpstreamError(rt.name.Host, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	s.metrics.upstreamBytes.WithLabelValues(s.metrics.host(rt.name.Host)).Add(float64(len(data)))
	if err != nil {
		return nil, &unreachableError{Host: rt.name.Host, Err: fmt.Errorf("reading manifest: %w", err)}
	}
	if len(data) > maxManifestSize {
		return nil, badUpstream(rt.name.Host, errcode.ErrorCodeManifestInvalid, fmt.Sprintf("upstream manifest is larger than %d bytes", maxManifestSize))
	}
	if resp.ContentLength >= 0 && int64(len(data)) != resp.ContentLength {
		return nil, badUpstream(rt.name.Host, errcode.ErrorCodeManifestInvalid, "upstream manifest response was truncated")
	}
	if !isJSONObject(data) {
		// A captive portal's login page, a CDN's error page: whatever it
		// hashes to, it is not a manifest, and caching it would serve it
		// for this tag during the next outage.
		return nil, badUpstream(rt.name.Host, errcode.ErrorCodeManifestInvalid,
			fmt.Sprintf("upstream answered with something that is not a JSON manifest (Content-Type %q)", resp.Header.Get("Content-Type")))
	}
	if signedSchema1(resp.Header.Get("Content-Type"), data) {
		return nil, badUpstream(rt.name.Host, errcode.ErrorCodeManifestInvalid,
			"the upstream has only a signed schema 1 manifest for this reference (deprecated; its digest does not cover the signatures it comes with, so it cannot be verified); push the image again with a current client (Docker schema 2 or OCI), or pull it from the registry directly")
	}
	want := rt.digest
	if hdr := resp.Header.Get("Docker-Content-Digest"); hdr != "" {
		d, err := digest.Parse(hdr)
		if err != nil {
			return nil, badUpstream(rt.name.Host, errcode.ErrorCodeDigestInvalid, "upstream sent an invalid Docker-Content-Digest header")
		}
		if want != "" && d != want {
			return nil, badUpstream(rt.name.Host, errcode.ErrorCodeDigestInvalid, fmt.Sprintf("upstream answered with manifest %s for %s", d, want))
		}
		want = d
	}
	if want == "" {
		want = digest.FromBytes(data)
	}
	if !want.Algorithm().Available() || want.Algorithm().FromBytes(data) != want {
		return nil, badUpstream(rt.name.Host, errcode.ErrorCodeDigestInvalid, fmt.Sprintf("upstream manifest does not match its digest %s", want))
	}
	mt := mediaTypeOf(resp.Header.Get("Content-Type"), data)
	if s.cache != nil {
		if err := s.cache.PutManifest(rt.name.Host, rt.name.Path, want, mt, data); err != nil {
			s.log.Warn("could not cache manifest", "host", rt.name.Host, "repository", rt.name.Path, "digest", want, "error", err)
		} else if !rt.byDigest() {
			s.recordTag(rt, want, mt)
		}
	}
	return &manifest{digest: want, mediaType: mt, data: data, size: int64(len(data))}, nil
}

// isJSONObject reports whether data is one JSON object, as every manifest
// and index (and Docker's signed schema 1) is.
func isJSONObject(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

// signedSchema1 recognises Docker's signed schema 1 manifest, by its
// Content-Type or by the "signatures" a schema 1 body carries.
func signedSchema1(contentType string, data []byte) bool {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/vnd.docker.distribution.manifest.v1+prettyjws" {
		return true
	}
	if !bytes.Contains(data, []byte(`"signatures"`)) {
		return false
	}
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		Signatures    []json.RawMessage `json:"signatures"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.SchemaVersion == 1 && len(probe.Signatures) > 0
}

// badUpstream is an upstream answer that cannot be served: the client gets
// 502 with what was wrong.
func badUpstream(host string, code errcode.ErrorCode, msg string) error {
	return &upstreamError{Host: host, Status: http.StatusBadGateway, Unusable: true, Errors: errcode.Errors{code.WithMessage(msg)}}
}

// mediaTypeOf takes the upstream's Content-Type, or the manifest's own
// mediaType field when the header says nothing useful.
func mediaTypeOf(contentType string, data []byte) string {
	if mt := declaredMediaType(contentType); mt != "" {
		return mt
	}
	if data != nil {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		if json.NewDecoder(bytes.NewReader(data)).Decode(&probe) == nil && probe.MediaType != "" {
			return probe.MediaType
		}
	}
	if contentType != "" {
		return contentType
	}
	return "application/vnd.oci.image.manifest.v1+json"
}

// declaredMediaType is the media type a Content-Type header names, or ""
// when it names none that says what a manifest is.
func declaredMediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && mt != "" && mt != "application/octet-stream" && mt != "text/plain" {
		return mt
	}
	return ""
}

// upstreamRequest sends one request for rt to its upstream repository.
func (s *Server) upstreamRequest(ctx context.Context, method string, rt *route, query map[string][]string, header http.Header) (*http.Response, error) {
	c, err := s.upstreams.client(ctx, rt.name)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, method, rt, query, header)
}
