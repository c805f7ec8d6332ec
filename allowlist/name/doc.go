// Package name is the canonical name of a repository on a registry
// (Repository: host and path), made once where a name enters tollgate and
// used unchanged after that: by the allowlist to decide, by the proxy to
// find credentials, reach the upstream and key its cache. Normalisation
// follows distribution/reference (Docker Hub when no host is named,
// "library/" for a one-component Docker Hub path) and the allowlist's host
// rules (lower case, no default port, Docker Hub's aliases folded to
// docker.io), so that the same repository always has the same name.
package name
