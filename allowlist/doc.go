// Package allowlist decides which image references may be pulled. The proxy
// asks it for every request (Decide, with the canonical name.Repository its
// routing made; the verdict decides, it never renames) and `tollgate check`
// for each reference on its command line (Check). Attackers choose the references,
// so the rules below are exact and matching never works on substrings.
//
// # References
//
// A reference is parsed and normalised with distribution/reference, as
// docker does: a missing registry host is docker.io, a one-component Docker
// Hub repository gets "library/" (alpine is docker.io/library/alpine), a
// reference with neither tag nor digest gets ":latest". A first component is
// a registry host only when it contains '.' or ':', is "localhost", or has
// upper case; otherwise it is a Docker Hub namespace ("ghcr/x" is
// docker.io/ghcr/x). Anything that does not parse is denied, with the parse
// error as the reason: user-info ("user@host"), schemes, query strings,
// empty components, upper case in the repository, non-ASCII characters,
// tags over 128 characters, repositories over 255.
//
// The registry host is then canonicalised (CanonicalHost): lower case; no
// trailing dot (accepted by CheckRepository; the reference grammar itself
// refuses it); the default port :443 removed and leading zeros of a port
// dropped (ghcr.io:0443 is ghcr.io); IPv6 literals in their short form
// ([0:0::1] is [::1]); and Docker Hub's aliases index.docker.io,
// registry-1.docker.io and registry.hub.docker.com folded to docker.io
// (only without a port: docker.io:5000 is some other registry). A host is
// refused when a label is longer than 63 characters or the name longer than
// 253, when its last label is numeric but it is not a dotted-quad IPv4
// address ("127.1", "0x7f.0.0.1"), for an IPv6 zone or an IPv4-mapped IPv6
// literal, and for a port outside 1-65535. Internationalised names are
// accepted only in their ASCII punycode form (xn--...), which then matches
// as the plain ASCII it is.
//
// # Patterns
//
//	host[:port][/repository]
//
// The host part is matched against the canonical host label by label (the
// parts between dots); both must have the same number of labels:
//
//   - a literal label matches itself, case-insensitively;
//   - "*" as a whole label matches any one label, never the empty label and
//     never more than one: "*.azurecr.io" matches myreg.azurecr.io, not
//     azurecr.io (list the apex if you want it) and not a.b.azurecr.io;
//   - "*" inside a label matches one or more characters of that label only:
//     "*-docker.pkg.dev" matches us-central1-docker.pkg.dev, not
//     docker.pkg.dev or us.docker.pkg.dev; at most one '*' per label;
//   - "<account>" matches exactly 12 decimal digits (an AWS account ID) and
//     "<region>" an AWS region name (lower-case letter groups and a final
//     one- or two-digit group joined by '-': us-east-1, us-gov-west-1), each
//     as one whole label.
//
// A pattern with a wildcard must name its last two labels literally, so
// "*.io" or "*.*" is refused as too broad; wildcards are refused in IP
// addresses, and a wildcard never matches an IP literal. A host without a
// wildcard is canonicalised like a reference's host, so "Index.Docker.IO"
// or "ghcr.io:443" are fine ways to write docker.io and ghcr.io. Because
// aliases are folded first, "*.docker.io" does not match Docker Hub.
//
// The port is part of the host: "127.0.0.1:5001" matches only port 5001,
// and a pattern without a port matches only the default port (443), never
// ghcr.io:5000.
//
// The optional repository part is matched on whole path components:
//
//   - none ("ghcr.io"): every repository of the host;
//   - "ghcr.io/myorg/*": repositories under myorg, at any depth
//     (ghcr.io/myorg/x, ghcr.io/myorg/x/y), but not ghcr.io/myorg itself and
//     not ghcr.io/myorgevil/x; "ghcr.io/*" is the same as "ghcr.io";
//   - "ghcr.io/myorg/app" (no "/*"): exactly that repository.
//
// On Docker Hub an exact one-component repository gets "library/" as
// references do: "docker.io/alpine" is docker.io/library/alpine. '*' is
// allowed only as the whole last component. Patterns are ASCII; tags,
// digests, user-info and schemes are refused.
//
// # Verdicts
//
// Patterns are tried in order and the first that matches host and
// repository allows the reference; its text is the verdict's Pattern. A
// denial says why: the host is in no pattern, or a pattern names the same
// host on another port, or the host is allowed only for other repositories;
// each with the entry to add to the config. An empty policy denies
// everything.
package allowlist
