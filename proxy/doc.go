// Package proxy is tollgate's pull-through registry proxy: it serves the
// pull side of the OCI distribution API for many upstream registries at
// once, routed by the first path component (/v2/<registry-host>/<repo>/...),
// by containerd's ?ns=<registry-host>, or to Docker Hub when neither names a
// host.
//
// # The request walk
//
// A request walks one way, and each step has its file:
//
//	route        routing.go       the path (or ?ns=) names the registry, the repository,
//	                              the API object (manifest, blob, tag list) and its reference
//	name         allowlist/name   one canonical name.Repository (host + path; Docker Hub's
//	                              aliases, default port and library/ folded), made once by
//	                              parseRoute and used unchanged by every step below
//	policy       policy.go        the allowlist decides on that name (Policy.Decide) before
//	             registry.go      anything leaves the host; the verdict never renames
//	credentials  auth.go          the login for the name's host (never in public mode);
//	             realm.go         where credentials may travel (token realms, redirects)
//	upstream     upstream.go      an authenticated client per repository and login
//	                              (go-containerregistry's transport); endpoints
//	cache        proxy/cache      verified content, looked up in one order: this host, the
//	                              shared tier, the upstream; the rule "a repository proves
//	                              access upstream before it reads content cached for another"
//	                              is the cache's (access.prove), and every path goes through it
//	response     manifests.go     one service per API object: manifestService, blobService,
//	             blobs.go         tagService, each with one order of look-ups and one place
//	             tags.go          that writes the cache; errors.go renders OCI error bodies
//
// Server (server.go) keeps the lifecycle (Serve, graceful shutdown,
// background fills, /healthz, /readyz asking the cache) and registry.go
// the routing from a request to its service. mediatypes.go holds the
// manifest media type rules (Accept lists sent upstream), metrics.go and
// logging.go the per-request metrics and log line.
package proxy
