// Package cache is the proxy's content cache: verified blobs and manifests
// on local disk, addressed by digest (sha256, sha512), served per upstream
// repository, filled once per digest while any number of clients stream
// from the download in progress.
//
// # Using it (the proxy's side)
//
//	c, err := cache.Open(ctx, cache.Options{Dir: dir, MaxSize: 50 << 30})
//	defer c.Close(shutdownCtx)
//
// The cache owns its directory: Options.Mode is checked against the
// directory's record (a public cache refuses one a private proxy filled:
// ErrPrivateContent) before anything in it is used, CheckWritable answers
// the proxy's readiness probe, and MaxSize and MaxManifestSize are its
// limits.
//
// Blobs. GET of a blob:
//
//	r, err := c.Fetch(req.Context(), host, repo, dgst, size /* -1 if unknown */, cache.Upstream{
//		Open:  func(ctx context.Context) (io.ReadCloser, int64, error) { /* GET upstream, return body, Content-Length */ },
//		Check: func(ctx context.Context) error { /* HEAD upstream with this repo's credentials: nil if 200 */ },
//	})
//	if err != nil { /* upstream's error (404, 401, ...) or ErrInvalidName */ }
//	defer r.Close()
//	// Range requests: http.ServeContent(w, req, "", time.Time{}, r) when r.Size() >= 0.
//	// Otherwise io.Copy(w, r); a non-EOF error after headers were sent means
//	// the content did not verify: panic(http.ErrAbortHandler) so the client
//	// sees a broken response, never a clean end.
//
// Fetch serves a cache hit from the committed file; on a miss the first
// caller starts one fill (Upstream.Open, in its own goroutine and context)
// and every concurrent caller for the same digest streams from its temp file
// as bytes arrive. A caller that goes away stops its own reader only; the
// fill runs on, bounded by Options.FillIdleTimeout and FillTimeout, and
// commits for the next caller. If the content is cached (or being filled)
// for another repository only, Fetch first calls Upstream.Check: knowing a
// digest is not enough to read it through a repository.
//
// HEAD of a blob: Stat(host, repo, d) gives the size if cached for the
// repository. Otherwise Admit(ctx, host, repo, d, check) links the
// repository to a copy cached for another once check (a HEAD upstream with
// the repository's credentials) answered yes, so the next GET is a hit; it
// is ErrNotFound, without calling check, when the cache does not hold d.
//
// The access rule, "a repository reads content cached, being filled, or in
// the shared tier for another repository only after the upstream confirmed
// that this repository has it", lives in one place (access.prove in
// fetch.go) that Fetch, Admit, AdmitManifest and the shared tier's source
// all go through. Blob(ctx, host, repo, d)
// reads cached content without ever going upstream. Content(ctx, d) reads
// committed content or a fill in progress whichever repository it is for,
// never going upstream: for a caller that proved access by other means (a
// fleet peer), never for a client request.
//
// # The fill
//
// runFill reads as its steps: openSource (the first of Cache.sources that
// has the content: the shared tier, then the upstream), prepare (size,
// room, temp file), copyIn (hash while writing, verify), commit (the one
// place a fill writes the cache). A new place to fill from is a source
// added to Cache.sources; whatever it gives is verified and committed the
// same way.
//
// Manifests (bounded to MaxManifestSize, so buffered): GetManifest(host,
// repo, d) returns Data and MediaType if cached for the repository;
// PutManifest stores what the upstream answered after verifying its digest;
// AdmitManifest links a manifest cached for another repository once an
// upstream HEAD confirmed it (Link and LinkManifest link without asking:
// for a caller that asked the upstream itself). Tags: PutTag(host, repo, tag, Tag{Digest,
// MediaType, FetchedAt}) after each successful revalidation; GetTag when the
// upstream is unreachable or answers 429/5xx, to keep serving the last known
// digest.
//
// (host, repo) must be a canonical repository name, as name.New makes it
// (the proxy passes the name.Repository its routing made); anything else is
// ErrInvalidName (they are used as path components).
//
// # Guarantees
//
//   - Verification: a fill hashes as it writes; only content whose digest
//     (and announced size) match is fsynced and renamed into place. A
//     truncated, oversized or corrupt response is never committed; its temp
//     file is removed and every reader gets an error wrapping ErrFillFailed
//     (and ErrDigestMismatch, ErrSizeMismatch, ErrIdleTimeout or the upstream
//     read error) in place of io.EOF. Streaming readers hold back the last
//     byte until verification, so a client never receives all the bytes of
//     a blob that then fails.
//   - Crash safety: fills write into tmp/, from which Open removes them
//     (and nothing it did not name itself); blobs/ only
//     ever holds fsynced, verified files; repository links and tag records
//     are separate small files written atomically. After kill -9 the cache
//     serves what was committed and nothing partial. One process per
//     directory (a lock file).
//   - Memory: one 256 KiB buffer per fill, none per reader beyond the
//     caller's; independent of blob size and reader count.
//   - Eviction: past Options.MaxSize, least-recently-used content no reader
//     holds open is removed (a fill in progress never is). Room is made for
//     a fill of announced size before it is written, so MaxSize bounds the
//     disk. Access order is
//     kept in memory; the file mtime is refreshed at most every 10 minutes
//     so the order survives a restart without a write per read.
//
// Verify re-hashes all committed content and removes what no longer matches
// (for an operator who suspects the disk; not needed after a crash).
//
// # Metrics
//
// Stats returns cumulative counters (hits, misses, joins, bytes from
// upstream, from the shared tier and from cache, evictions, fill errors) and
// the current size; NewCollector wraps them for Prometheus so the proxy can
// register them with its own Registerer (nothing is registered globally).
//
// # Shared tier
//
// Options.Shared is an optional second tier (SharedTier) shared by many
// hosts; NewDriverTier builds one on any distribution/v3 storage driver
// (filesystem on shared storage, s3, gcs, azure). On a local miss, the fill
// looks in the shared tier first: if the content is there it calls
// Upstream.Check (repository scoping holds across hosts too: each host asks
// the upstream with its own credentials) and copies from the shared tier,
// verifying the digest as for an upstream download. After a verified fill
// from upstream, the blob is uploaded to the shared tier in the background.
// Each look-up in the tier is bounded by Options.SharedTimeout (a tier that
// is down or hangs sends the fill upstream), an upload that takes no data
// for FillIdleTimeout is cancelled, and Open removes the partial uploads of
// hosts killed mid-upload once they are StaleUploadAge old. See
// docs/proxy-cache.md.
//
// # Fleet
//
// Options.Fleet (implemented by package proxy/fleet; the cache knows no
// lease engine) is the next source after the shared tier: Claim says
// whether another host is filling the blob. If so, the fill calls
// Upstream.Check and then streams from that host, verifying the digest as
// for any source; a stream that breaks off goes on from upstream where it
// was (Upstream.OpenFrom, a ranged GET; without it the whole download with
// the bytes it had skipped). Otherwise (this host took the lease) the fill looks in the
// shared tier once more, as the previous holder may have uploaded the blob
// and released its lease in between, then goes upstream; the claim's Done is
// called after the commit and the shared-tier upload (or on failure), which
// releases the lease. Content serves peers through Content (committed or
// being filled, never upstream). See docs/fleet.md.
package cache
