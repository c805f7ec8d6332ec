//go:build clouddrivers

package main

// The gcs and azure shared-tier drivers, only in builds with
// `-tags clouddrivers`: their SDKs add tens of megabytes (BENCHMARKS.md).
import (
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
)

const cloudDrivers = true
