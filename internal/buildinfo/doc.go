// Package buildinfo holds the version string stamped into tollgate's binaries
// at build time with -ldflags "-X github.com/spacelift-io/tollgate/internal/buildinfo.Version=v1.2.3".
package buildinfo
