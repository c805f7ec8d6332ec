//go:build clouddrivers

package main

// Object-store drivers for the proxy's optional shared cache tier
// (proxy.shared). They add about 55 MB to the binary, so they are built only
// with `go build -tags clouddrivers ./cmd/tollgate`; the filesystem driver (a
// path on shared storage: EFS, NFS) is always there, from proxy/cache.
import (
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)
