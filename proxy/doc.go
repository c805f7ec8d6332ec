// Package proxy is tollgate's pull-through registry proxy: it serves the
// pull side of the OCI distribution API for many upstream registries at
// once, routed by the first path component (/v2/<registry-host>/<repo>/...),
// by containerd's ?ns=<registry-host>, or to Docker Hub when neither names a
// host. Every request is checked against the allowlist (Policy) before
// anything leaves the host; upstream credentials come from a Credentials
// source (never in public mode) and go only to the registry they belong to;
// content goes through proxy/cache, which verifies digests and fetches each
// blob once however many clients ask.
//
// Files: routing.go (paths to routes), registry.go (dispatch and the
// allowlist), manifests.go, blobs.go, tags.go (the handlers), upstream.go
// (endpoints and authenticated clients), auth.go (credential lookup),
// realm.go (where credentials may travel), errors.go (OCI error bodies),
// metrics.go, logging.go, server.go (lifecycle, /healthz, /readyz).
package proxy
