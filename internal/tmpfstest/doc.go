// Package tmpfstest is for tests only: it mounts a small tmpfs, so that a
// test can fill a filesystem (the cache's disk running out) without filling
// the machine's own disk.
package tmpfstest
