// Package credsource is the error contract of tollgate's credential
// sources (the ECR token engine, the config-directory logins, the helpers a
// docker config delegates to) with the code that asks them (the credential
// helper, the proxy, refresh).
//
// Two questions are asked of a failed lookup, each with one check:
//
//   - IsNotFound: the source has no credentials for this registry, and the
//     caller goes on anonymously. An error says so by having a NotFound()
//     method anywhere in its chain (the errdefs convention, which
//     docker-credential-helpers' not-found error follows too); ErrNotFound
//     is this package's.
//   - IsTemporary: the failure is expected to pass on its own (throttling,
//     an outage), so a cached answer may stand in for a fresh one. An error
//     says so with a Temporary() bool method; which kinds of ECR failure are
//     temporary is one table in ecr/tokencache.
//
// Every other error is a real failure whose message says what to do.
package credsource
