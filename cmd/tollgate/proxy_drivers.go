package main

// Object-store drivers for the proxy's optional shared cache tier
// (proxy.shared). The filesystem driver (a path on shared storage: EFS,
// NFS) comes with proxy/cache; S3 is built in because fleets that outgrow
// one host are on AWS (it costs the binary about 10 MB, see BENCHMARKS.md);
// gcs and azure, which add much more, are in proxy_drivers_cloud.go, built
// with `go build -tags clouddrivers ./cmd/tollgate`.
import (
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)

// sharedDriverHint explains a driver that failed to open because this
// binary was built without it.
func sharedDriverHint(driver string) string {
	switch driver {
	case "gcs", "azure":
		if !cloudDrivers {
			return " (the gcs and azure drivers need a binary built with -tags clouddrivers)"
		}
	}
	return ""
}
