// Package tokencache is the ECR token engine's on-disk cache and everything
// a warm lookup needs: which credential source a lookup would use (from
// environment variables and shared-config file metadata, never by resolving
// credentials), the scope one token serves, and the 0600 JSON entries with
// their lock files; and the kinds of failure to get a token (kind.go, with
// the one table of which are temporary), which MintError carries across the
// process boundary. It links the standard library only (no AWS SDK), so that
// docker-credential-tollgate answers a warm get without paying the SDK's
// start-up cost; package ecr mints on a miss.
package tokencache
