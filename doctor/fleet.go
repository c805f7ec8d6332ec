package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/proxy/cache"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// probeDigest is a digest no blob has (the hash of a fixed doctor string):
// looking it up in the shared tier proves the store answers and the
// credentials may list it, without reading or writing content.
var probeDigest = digest.FromString("tollgate doctor: shared tier probe")

// checkSharedTier opens proxy.shared as the proxy does and looks up
// probeDigest: "not found" is the healthy answer.
func checkSharedTier(ctx context.Context, cfg *config.Config) Result {
	if cfg == nil {
		return Result{Status: StatusSkip, Detail: "the config did not load, so the shared tier is unknown"}
	}
	sh := cfg.Proxy.Shared
	if sh == nil || sh.Driver == "" {
		return Result{Status: StatusSkip, Detail: "no shared tier configured (proxy.shared)"}
	}
	if sh.Driver == "filesystem" {
		// Opening it would create the directory: only look.
		root, _ := sh.Parameters["rootdirectory"].(string)
		fi, err := os.Stat(root)
		switch {
		case root == "":
			return Result{Status: StatusFail, Detail: "proxy.shared driver filesystem without a rootdirectory", Fix: "set proxy.shared.parameters.rootdirectory to a path on shared storage (EFS, NFS)"}
		case errors.Is(err, fs.ErrNotExist):
			return Result{Status: StatusWarn, Detail: root + " does not exist yet; the proxy creates it (mode 0700) when it starts", Fix: "check that the shared storage is mounted at " + root}
		case err != nil:
			return Result{Status: StatusFail, Detail: err.Error(), Fix: "make " + root + " readable and writable by the user that runs the proxy"}
		case !fi.IsDir():
			return Result{Status: StatusFail, Detail: root + " is not a directory", Fix: "point proxy.shared.parameters.rootdirectory at a directory"}
		}
		return Result{Status: StatusOK, Detail: "filesystem tier at " + root}
	}
	tier, err := cache.OpenDriverTier(ctx, sh.Driver, sh.Parameters)
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "fix proxy.shared (driver and parameters, as distribution documents them)"}
	}
	what := sharedTierName(sh)
	if _, err := tier.Stat(ctx, probeDigest); err != nil && !errors.Is(err, cache.ErrNotFound) {
		return Result{Status: StatusFail, Detail: fmt.Sprintf("%s: %v", what, err),
			Fix: "check that the store is reachable from this host and that the credentials may list and read the bucket (the proxy passes the tier by when it fails: pulls still work, from upstream)"}
	}
	return Result{Status: StatusOK, Detail: what + " answers (a look-up of a blob that is not there said so)"}
}

func sharedTierName(sh *config.SharedCache) string {
	if b, ok := sh.Parameters["bucket"]; ok {
		return fmt.Sprintf("%s bucket %v", sh.Driver, b)
	}
	return sh.Driver + " tier"
}

// fleetLeaseSpec is the lease store the fleet would use: the shared tier's
// object store (lease.SpecShared) unless proxy.fleet.lease names another one.
func fleetLeaseSpec(cfg *config.Config) string {
	if f := cfg.Proxy.Fleet; f != nil && f.Lease != "" {
		return f.Lease
	}
	return lease.SpecShared
}

// checkFleetLease takes a lease in the fleet's lease store under a
// namespace of its own, checks that a second acquire of it is refused (the
// store honours conditional writes), and releases it.
func checkFleetLease(ctx context.Context, cfg *config.Config) Result {
	if cfg == nil {
		return Result{Status: StatusSkip, Detail: "the config did not load, so the lease store is unknown"}
	}
	spec := fleetLeaseSpec(cfg)
	var driver string
	var params map[string]any
	if sh := cfg.Proxy.Shared; sh != nil {
		driver, params = sh.Driver, sh.Parameters
	}
	if spec == lease.SpecShared && driver != "s3" && driver != "filesystem" {
		return Result{Status: StatusSkip, Detail: "no lease store: fleet leases live in an s3 or filesystem shared tier, or in Redis"}
	}
	if spec == lease.SpecShared && driver == "filesystem" {
		// Do not create the shared storage's root: that is the proxy's job
		// (and a missing root usually means it is not mounted).
		root, _ := params["rootdirectory"].(string)
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			return Result{Status: StatusSkip, Detail: "the filesystem shared tier's rootdirectory is not there (see proxy-shared)"}
		}
	}
	s, err := lease.Open(ctx, spec, "doctor", driver, params)
	if err != nil {
		return Result{Status: StatusFail, Detail: err.Error(), Fix: "fix the lease store's configuration"}
	}
	defer s.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	key := "doctor-probe-" + hex.EncodeToString(b[:])
	const ttl = 30 * time.Second
	l, err := s.Acquire(ctx, key, "http://doctor.invalid", ttl)
	if err != nil {
		return Result{Status: StatusFail, Detail: "taking a lease: " + err.Error(),
			Fix: "check that the lease store is reachable and that the credentials may write to it (without it each host fills new blobs from upstream on its own)"}
	}
	other, err := s.Acquire(ctx, key, "http://doctor-2.invalid", ttl)
	if err == nil {
		_ = s.Release(ctx, other)
		return Result{Status: StatusFail, Detail: "the store handed one lease to two holders: it ignores conditional writes (If-None-Match / If-Match)",
			Fix: "use an object store that honours S3 conditional writes, or a Redis lease store"}
	}
	if !errors.Is(err, lease.ErrHeld) {
		return Result{Status: StatusFail, Detail: "second acquire: " + err.Error(), Fix: "check the lease store's health"}
	}
	if err := s.Release(ctx, l); err != nil {
		return Result{Status: StatusFail, Detail: "releasing the probe lease: " + err.Error(), Fix: "check the lease store's health"}
	}
	return Result{Status: StatusOK, Detail: fmt.Sprintf("lease store (%s) takes, refuses a second holder of, and releases a lease", leaseStoreName(spec, cfg))}
}

func leaseStoreName(spec string, cfg *config.Config) string {
	if spec == lease.SpecShared && cfg.Proxy.Shared != nil {
		return "the shared tier's " + sharedTierName(cfg.Proxy.Shared)
	}
	return "redis"
}
