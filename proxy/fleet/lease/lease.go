package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Lease is one host's claim to fill one blob across the fleet.
type Lease struct {
	// Key is what is leased, as the caller named it (e.g. "sha256:<hex>").
	Key string
	// Holder is the holder's advertised peer URL, e.g. "http://10.0.0.5:5001".
	Holder string
	// Expires is when the lease ends unless renewed, on this host's clock.
	// For a lease of ours it errs early (it counts from before the request
	// was sent); for another holder's it is an estimate.
	Expires time.Time

	// token is random per write of the lease: the engine changes a lease
	// only if it still carries it (Redis), or it makes each write's ETag
	// unique (S3).
	token string
	// etag is the S3 object's ETag after our last write.
	etag string
}

var (
	// ErrHeld is returned by Acquire when another holder has an unexpired
	// lease; the Lease returned with it says who and until when.
	ErrHeld = errors.New("lease: held by another host")
	// ErrLost is returned by Renew and Release when the lease is no longer
	// ours: it expired and another host took it over (or it was released).
	ErrLost = errors.New("lease: no longer ours")
)

// Store holds the fleet's leases in one engine. Every method does I/O and
// honours ctx's deadline; an error other than ErrHeld or ErrLost means the
// engine could not answer (down, slow, misconfigured), and the caller
// should go on without the fleet.
type Store interface {
	// Acquire takes key's lease for holder for ttl. It returns (lease, nil)
	// when the lease is ours, (theirs, ErrHeld) when another holder's
	// lease has not expired: theirs says who and until when, and Renew and
	// Release refuse it.
	Acquire(ctx context.Context, key, holder string, ttl time.Duration) (Lease, error)
	// Renew extends a lease of ours to ttl from now, or says ErrLost. The
	// returned Lease replaces l: later Renew and Release calls must be
	// given it (an engine may version every write).
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// Release ends a lease of ours at once, so that the next Acquire of
	// its key succeeds; ErrLost if it was no longer ours.
	Release(ctx context.Context, l Lease) error
	// List returns the unexpired leases whose key starts with prefix ("" for
	// every key), at most max (at least 1) of them, sorted by key; when more
	// match, which ones are returned is up to the engine. Released and
	// expired leases are left out, and so are records that are not tollgate
	// leases. Like the Lease ErrHeld returns, each says who holds it and
	// until when; Renew and Release refuse them. An engine reads every
	// record under the prefix, expired ones not yet cleaned up included, so
	// callers list narrow prefixes (fleet membership records), never blobs.
	List(ctx context.Context, prefix string, max int) ([]Lease, error)
	// Close releases the engine's connections.
	Close() error
}

// SpecShared is the lease spec that uses the shared tier's object store.
const SpecShared = "shared"

// Open builds the Store a config names. spec is "shared" (or empty, the
// default), which keeps the leases in the shared tier's own object store
// given the tier's distribution driver name and parameters (as in config
// proxy.shared: driver s3, parameters bucket, region, regionendpoint,
// accesskey, secretkey, forcepathstyle, rootdirectory, ... with the names
// of distribution's s3-aws driver); or "redis://[USER:PASSWORD@]HOST:PORT/DB"
// (rediss:// for TLS). namespace separates fleets that share an engine
// (public and private mode, or two fleets on one bucket).
//
// Open does not contact the engine; the first call does.
func Open(ctx context.Context, spec, namespace, sharedDriver string, sharedParams map[string]any) (Store, error) {
	if err := validNamespace(namespace); err != nil {
		return nil, err
	}
	switch {
	case spec == "" || spec == SpecShared:
		return openShared(ctx, namespace, sharedDriver, sharedParams)
	case strings.HasPrefix(spec, "redis://") || strings.HasPrefix(spec, "rediss://"):
		s, err := openRedis(spec, namespace)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("lease: unknown lease store %q: use %q (the shared tier's object store) or redis://HOST:PORT/DB", Redact(spec), SpecShared)
	}
}

func openShared(ctx context.Context, namespace, driver string, params map[string]any) (Store, error) {
	switch driver {
	case "s3", "s3-aws":
		s, err := openS3(ctx, namespace, params)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "filesystem":
		s, err := openFile(namespace, params)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "":
		return nil, errors.New("lease: proxy.fleet.lease is \"shared\" but there is no shared tier: configure proxy.shared (driver s3 or filesystem) or name a Redis, lease: redis://HOST:6379/0")
	default:
		return nil, fmt.Errorf("lease: the shared tier's driver %q cannot hold leases (they are implemented for s3 and filesystem): name a Redis, lease: redis://HOST:6379/0", driver)
	}
}

// maxKeyLen bounds keys and namespaces so that an object name stays well
// under S3's 1024-byte limit.
const maxKeyLen = 200

// validKey accepts what callers pass ("sha256:<hex>" and the like): a
// non-empty run of letters, digits and . _ : + -, not starting with a dot.
func validKey(key string) error {
	if key == "" || len(key) > maxKeyLen || key[0] == '.' {
		return fmt.Errorf("lease: invalid key %q: want 1 to %d of [A-Za-z0-9._:+-], not starting with a dot", key, maxKeyLen)
	}
	for _, c := range key {
		if !keyChar(c) {
			return fmt.Errorf("lease: invalid key %q: character %q is not one of [A-Za-z0-9._:+-]", key, c)
		}
	}
	return nil
}

// validList checks List's arguments: a prefix of key characters (possibly
// empty) and a positive bound.
func validList(prefix string, max int) error {
	if len(prefix) > maxKeyLen {
		return fmt.Errorf("lease: invalid prefix %q: longer than %d", prefix, maxKeyLen)
	}
	for _, c := range prefix {
		if !keyChar(c) {
			return fmt.Errorf("lease: invalid prefix %q: character %q is not one of [A-Za-z0-9._:+-]", prefix, c)
		}
	}
	if max < 1 {
		return fmt.Errorf("lease: listing at most %d leases: want at least 1", max)
	}
	return nil
}

// errNotLease marks a record under a store's prefix that is not a
// tollgate lease: Acquire reports it, List leaves it out.
var errNotLease = errors.New("not a tollgate lease")

// sortLeases orders List's result by key.
func sortLeases(ls []Lease) []Lease {
	slices.SortFunc(ls, func(a, b Lease) int { return strings.Compare(a.Key, b.Key) })
	return ls
}

// validNamespace is like validKey and also allows "/" between segments.
func validNamespace(ns string) error {
	if ns == "" || len(ns) > maxKeyLen {
		return fmt.Errorf("lease: invalid namespace %q: want 1 to %d of [A-Za-z0-9._:+-/]", ns, maxKeyLen)
	}
	for _, seg := range strings.Split(ns, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("lease: invalid namespace %q: empty segment or segment starting with a dot", ns)
		}
		for _, c := range seg {
			if !keyChar(c) {
				return fmt.Errorf("lease: invalid namespace %q: character %q is not one of [A-Za-z0-9._:+-/]", ns, c)
			}
		}
	}
	return nil
}

func keyChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '+' || c == '-'
}

// maxHolderLen bounds the holder URL stored in a lease.
const maxHolderLen = 512

func validHolder(holder string) error {
	if holder == "" || len(holder) > maxHolderLen {
		return fmt.Errorf("lease: invalid holder %q: want the peer URL this host advertises, 1 to %d bytes", holder, maxHolderLen)
	}
	if strings.ContainsAny(holder, "\x00\r\n") {
		return fmt.Errorf("lease: invalid holder %q: control characters", holder)
	}
	return nil
}

func validTTL(ttl time.Duration) error {
	if ttl < time.Second {
		return fmt.Errorf("lease: ttl %s is too short: want at least 1s", ttl)
	}
	return nil
}

func validAcquire(key, holder string, ttl time.Duration) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := validHolder(holder); err != nil {
		return err
	}
	return validTTL(ttl)
}

// newToken returns 128 random bits, hex encoded.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}
