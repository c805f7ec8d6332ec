// Package fleet makes a fleet of proxies fetch each new blob from upstream
// once: cross-host single flight, with the allowlist, credentials and
// repository scoping of every host intact.
//
// # The walk of a fill
//
// A host that misses a blob locally and in the shared tier asks its Node
// (the cache's Options.Fleet) before it goes upstream. Node.Claim takes the
// blob's lease in the lease engine (package lease: the shared tier, S3 with
// conditional writes or a shared filesystem, or Redis), bounded by
// LeaseTimeout:
//
//   - taken: this host fills from upstream as without a fleet (after one
//     more look in the shared tier, which the previous holder may have
//     just filled); the lease is renewed every third of LeaseTTL while the
//     fill runs, and released once the blob is committed and uploaded to
//     the shared tier, so that hosts looking later find the shared copy;
//   - held by another host: this host first proves its own repository's
//     access upstream (the cache's Upstream.Check, the rule it applies to
//     content cached for another repository: knowing a digest never reads
//     private content), then streams the blob from the holder, which serves
//     it from its fill in progress (one more reader of it). The cache
//     verifies the digest as for any source; if the holder goes away
//     mid-stream the fill goes on from upstream where it was (a ranged
//     GET of the rest, cache.Upstream.OpenFrom),
//     and a copy that does not verify is never committed (the digest is
//     then filled from upstream for a while without asking the fleet);
//   - the engine is down or slow: the fill goes upstream, counted.
//
// A holder killed mid-fill costs each follower one upstream download of
// what it had not received yet (they do not wait for the lease to expire); hosts that miss later find
// the lease held by the dead host until it expires, fail to reach it
// (connection refused, or the 2 s dial timeout when the machine is gone)
// and go upstream too.
//
// # The peer protocol
//
// Each host serves its blobs to the other members on a listener of its own
// (proxy.fleet.listen, never the loopback client listener): the OCI blob
// API's GET and HEAD of /v2/<host>/<repository>/blobs/<digest>, Range
// optional, for blobs it holds committed or is filling right now. It never
// goes upstream for a peer and never serves manifests or tags. A signed
// GET /v2/ answers 200 (Node.Ping, for doctor).
//
// Every request is signed: HMAC-SHA256, keyed by the fleet's shared secret
// (proxy.fleet.secret_file, 0600), over the method, the path, the signing
// time and the mode. The server refuses unsigned requests (401) and wrong,
// stale (more than MaxClockSkew away) or other-mode signatures (403) before
// it looks at the path. The secret never travels and never reaches logs,
// errors or metrics. Public-mode and private-mode hosts are different
// fleets: the mode is signed, and it names the lease namespace.
//
// Why a shared secret and HMAC rather than mutual TLS: it is one file that
// configuration management already knows how to ship, with no CA, no
// per-host certificates to issue, rotate and revoke, and no expiry to
// break a fleet at 3 a.m.; it authenticates every request (not just a
// connection) and binds the mode. What it does not do is encrypt: peers
// move blobs in clear on the fleet's private network, as the upstream
// registry's own CDN does. mTLS (a TLS listener with a client CA) remains
// an option for fleets whose network is not private; the protocol would
// not change.
//
// # Membership
//
// A host learns another's peer URL only from a lease that host holds, so
// while Serve runs, a Node also keeps a member record in its lease engine:
// a lease keyed MemberPrefix + a random id per process (a restarted host
// never collides with its previous run's record, which expires), holder its
// advertise URL, DefaultMemberTTL (90 s) renewed every third of it, and
// released when Serve returns. A failing engine is logged and counted and
// retried at the next tick; it never stops serving. No fill depends on the
// records: Members lists them for `tollgate doctor`, which pings each
// member (Ping) to say which peers this host can reach.
//
// # Metrics
//
// tollgate_fleet_leases_total{result="taken|held|lost|expired|error"},
// tollgate_fleet_peer_bytes_total (read from peers),
// tollgate_fleet_peer_errors_total{reason="unreachable|refused|status|broken|corrupt"},
// tollgate_fleet_peer_served_bytes_total and
// tollgate_fleet_peer_refused_total{reason} on the serving side,
// tollgate_fleet_member_writes_total{result="ok|error"} for the member
// record. See docs/fleet.md.
package fleet
