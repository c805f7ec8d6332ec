package proxy

import (
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/allowlist/name"
)

// routeKind says which part of the distribution API a request addresses.
type routeKind int

const (
	kindBase     routeKind = iota // GET /v2/
	kindManifest                  // /v2/<name>/manifests/<reference>
	kindBlob                      // /v2/<name>/blobs/<digest>
	kindTags                      // /v2/<name>/tags/list
)

func (k routeKind) String() string {
	switch k {
	case kindBase:
		return "base"
	case kindManifest:
		return "manifest"
	case kindBlob:
		return "blob"
	case kindTags:
		return "tags"
	}
	return "unknown"
}

// routeStyle records how the client named the upstream registry, so that
// URLs handed back to it (tag list pagination) use the same style.
type routeStyle int

const (
	stylePath    routeStyle = iota // /v2/<registry-host>/<repository>/...
	styleNS                        // /v2/<repository>/...?ns=<registry-host>
	styleDefault                   // /v2/<repository>/... => Docker Hub
)

// route is a parsed distribution API request.
type route struct {
	kind routeKind
	// name is the upstream repository, canonical (made once, here, and
	// used unchanged by the policy, credentials, upstream and cache).
	name name.Repository
	// clientName is the repository name exactly as it appeared in the path,
	// including a leading registry host in path style.
	clientName string
	// reference is the tag or digest of a manifest request.
	reference string
	// digest is set for blob requests and for manifests addressed by digest.
	digest digest.Digest
	style  routeStyle
	ns     string
}

// byDigest reports whether a manifest request names a digest, not a tag.
func (r *route) byDigest() bool { return r.digest != "" }

const dockerHub = "docker.io"

// parseRoute maps a request URL to a route. It returns an errcode error the
// handler can send as is.
func parseRoute(u *url.URL) (*route, error) {
	p := u.EscapedPath()
	if p == "/v2" || p == "/v2/" {
		return &route{kind: kindBase}, nil
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return nil, errNotFound
	}
	if strings.ContainsAny(rest, "%") {
		// Repository names, tags and digests never need escaping; refuse
		// anything that does rather than guess at its meaning.
		return nil, errcode.ErrorCodeNameInvalid.WithMessage("escaped characters are not allowed in repository paths")
	}
	r := &route{}
	var name string
	switch {
	case strings.HasSuffix(rest, "/tags/list"):
		r.kind = kindTags
		name = strings.TrimSuffix(rest, "/tags/list")
	case strings.Contains(rest, "/blobs/uploads"):
		return nil, errcode.ErrorCodeUnsupported.WithMessage("tollgate is a pull-through proxy: pushing blobs is not supported")
	default:
		i := strings.LastIndex(rest, "/manifests/")
		j := strings.LastIndex(rest, "/blobs/")
		switch {
		case i >= 0 && i > j:
			r.kind = kindManifest
			name, r.reference = rest[:i], rest[i+len("/manifests/"):]
		case j >= 0:
			r.kind = kindBlob
			name, r.reference = rest[:j], rest[j+len("/blobs/"):]
		case rest == "_catalog":
			return nil, errcode.ErrorCodeUnsupported.WithMessage("the catalog of a pull-through proxy is not available; list tags of a repository instead")
		default:
			return nil, errNotFound
		}
	}
	if name == "" {
		return nil, errcode.ErrorCodeNameInvalid.WithMessage("missing repository name")
	}
	r.clientName = name
	if err := r.setReference(); err != nil {
		return nil, err
	}
	if err := r.setName(name, u.Query().Get("ns")); err != nil {
		return nil, err
	}
	return r, nil
}

// setReference validates the tag or digest part of the path.
func (r *route) setReference() error {
	switch r.kind {
	case kindBlob:
		d, err := digest.Parse(r.reference)
		if err != nil {
			return errcode.ErrorCodeDigestInvalid.WithMessage("invalid blob digest " + quote(r.reference))
		}
		r.digest = d
	case kindManifest:
		if strings.Contains(r.reference, ":") {
			d, err := digest.Parse(r.reference)
			if err != nil {
				return errcode.ErrorCodeDigestInvalid.WithMessage("invalid manifest digest " + quote(r.reference))
			}
			r.digest = d
			return nil
		}
		if name.ValidTag(r.reference) != nil {
			return errcode.ErrorCodeTagInvalid.WithMessage("invalid tag " + quote(r.reference))
		}
	}
	return nil
}

// setName splits the path's repository name into registry host and
// repository and makes the canonical name of the upstream repository.
func (r *route) setName(clientName, ns string) error {
	host, repo := "", clientName
	// containerd names the upstream in ?ns= and sends the repository path
	// unchanged, so ns wins even when the repository's first component
	// looks like a host (GitLab groups may contain dots).
	if ns != "" {
		host, r.style, r.ns = ns, styleNS, ns
	} else if first, remainder, ok := strings.Cut(clientName, "/"); ok && isHost(first) {
		host, repo, r.style = first, remainder, stylePath
	} else if !strings.Contains(clientName, "/") && isHost(clientName) {
		return errcode.ErrorCodeNameInvalid.WithMessage("missing repository after registry host " + quote(clientName))
	} else {
		host, r.style = dockerHub, styleDefault
	}
	n, err := name.Parse(strings.ToLower(host) + "/" + repo)
	if err != nil {
		return errcode.ErrorCodeNameInvalid.WithMessage(err.Error())
	}
	r.name = n
	return nil
}

// isHost reports whether the first path component names a registry host, as
// docker and distribution/reference decide it: it has a dot or a port, or it
// is localhost.
func isHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// upstreamPath is the path of this route on the upstream registry.
func (r *route) upstreamPath() string {
	switch r.kind {
	case kindManifest:
		return "/v2/" + r.name.Path + "/manifests/" + r.reference
	case kindBlob:
		return "/v2/" + r.name.Path + "/blobs/" + r.reference
	case kindTags:
		return "/v2/" + r.name.Path + "/tags/list"
	}
	return "/v2/"
}

// clientTagsPath is the path a client uses for this repository's tag list,
// in the routing style it used.
func (r *route) clientTagsPath() string {
	return "/v2/" + r.clientName + "/tags/list"
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return "\"" + s + "\""
}
