// Package lease picks one filler per blob across a fleet of proxies.
//
// A host that misses a blob locally and in the shared tier asks a Store for
// the blob's lease before it fetches upstream. Exactly one host gets it
// (Acquire returns the lease); every other host is told who holds it
// (ErrHeld, with the holder's advertised peer URL) and streams the blob from
// that host instead of fetching it again. A lease expires unless its holder
// renews it, so a host that dies mid-fill blocks the others only until the
// expiry; after that one of them takes it over, and the old holder's next
// Renew or Release says ErrLost.
//
// The leases live in an engine the operator already runs; there is no
// consensus protocol of our own:
//
//   - "shared" (the default): the shared tier's own object store, with
//     conditional writes. On S3 (and S3-compatible stores such as SeaweedFS
//     or MinIO) a lease is one small object per blob: created with
//     `If-None-Match: *`, renewed, taken over after expiry and released with
//     `If-Match: <ETag>`, so every change of a lease is a compare-and-swap
//     that exactly one writer wins. Expiry is judged on the store's clock
//     (the object's Last-Modified against the response's Date), so hosts
//     with skewed clocks still agree on when a lease has expired.
//     On the filesystem driver (NFS, EFS) a lease is a directory of
//     generation files, each created with link(2), which fails if another
//     host created that generation first; expiry is judged on the file
//     server's clock (mtimes). The gcs and azure drivers cannot hold leases
//     yet (GCS ifGenerationMatch=0 and Azure If-None-Match: * would serve;
//     there is no emulator in the tests to prove them): Open says so and
//     names the Redis alternative.
//   - "redis://HOST:PORT/DB" (or rediss:// for TLS): SET NX PX, with renew
//     and release done by a Lua script that changes the key only if it still
//     holds this acquisition's random token; expiry is Redis's own.
//
// A Store is always optional for the caller: any error other than ErrHeld
// (the engine down, slow, or refusing) means "skip the fleet and fetch
// upstream as a lone host would". Open configures its clients to fail fast
// (no retry loops); the caller bounds each call with its context.
//
// Lease objects and keys are named after the caller's key under a
// namespace, so that two fleets (a public and a private pool) sharing one
// bucket or one Redis never see each other's leases.
//
// List returns the live leases under a key prefix (S3 ListObjectsV2 then a
// GET per object, Redis SCAN MATCH, a directory read): the fleet lists its
// member records with it. It reads every record under the prefix, so it is
// for narrow prefixes, never for the blob leases.
package lease
