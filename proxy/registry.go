package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// serveRegistry is the distribution API entry point: method check, routing,
// the allowlist, then the handler for the route's kind.
func (s *Server) serveRegistry(w http.ResponseWriter, r *http.Request) {
	ri := infoFrom(r.Context())
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ri.err = errors.New("method not supported by a pull-through proxy")
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, errcode.ErrorCodeUnsupported.WithMessage("tollgate is a pull-through proxy: "+r.Method+" is not supported (push and delete go to the registry itself)"))
		return
	}
	rt, err := parseRoute(r.URL)
	if err != nil {
		ri.err = err
		writeError(w, err)
		return
	}
	ri.kind = rt.kind.String()
	if rt.kind == kindBase {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("{}"))
		}
		return
	}
	ri.host, ri.repository, ri.reference = rt.name.Host, rt.name.Path, rt.reference
	v := s.policy.Decide(rt.name)
	if !v.Allowed {
		s.metrics.denials.WithLabelValues(s.metrics.deniedHost(rt.name.Host)).Inc()
		reason := v.Reason
		if reason == "" {
			reason = rt.name.String() + " is not on the registry allowlist"
		}
		ri.err = errors.New("denied: " + reason)
		writeError(w, errcode.ErrorCodeDenied.WithMessage(reason))
		return
	}
	switch rt.kind {
	case kindManifest:
		s.manifests.serve(w, r, rt)
	case kindBlob:
		s.blobs.serve(w, r, rt)
	case kindTags:
		s.tags.serve(w, r, rt)
	}
}

// failUpstream answers the client for an upstream that could not be asked or
// refused, choosing the code from the kind of failure.
func failUpstream(w http.ResponseWriter, r *http.Request, err error, notFound errcode.ErrorCode) {
	ri := infoFrom(r.Context())
	ri.err = err
	var ue *upstreamError
	var un *unreachableError
	switch {
	case errors.As(err, &ue):
		writeUpstreamError(w, ue, notFound)
	case errors.As(err, &un):
		writeError(w, errCodeUpstreamUnavailable.WithMessage(un.Error()))
	case errors.Is(err, context.Canceled):
		// The client went away; there is no one to answer.
	case errors.Is(err, errUntrustedRealm):
		writeError(w, errcode.ErrorCodeUnauthorized.WithMessage(err.Error()))
	default:
		var ec errcode.ErrorCoder
		if errors.As(err, &ec) {
			writeError(w, err)
			return
		}
		writeError(w, errCodeUpstreamUnavailable.WithMessage(err.Error()))
	}
}
