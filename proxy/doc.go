// Package proxy is tollgate's pull-through registry proxy: it routes OCI
// distribution API requests to many upstream registries, enforces the
// allowlist on every request, injects upstream credentials and caches content.
package proxy
