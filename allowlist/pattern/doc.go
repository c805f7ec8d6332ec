// Package pattern is the allowlist's pattern language: it canonicalises
// registry hosts and compiles and matches single allowlist patterns such as
// "ghcr.io/myorg/*" or "*.azurecr.io". It knows nothing about image
// references, tags or policies; package allowlist builds on it, and package
// config uses it to reject an invalid pattern at load time.
//
// The exact semantics are documented in package allowlist.
package pattern
