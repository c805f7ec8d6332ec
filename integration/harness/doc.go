// Package harness starts the real components that tollgate's integration
// tests talk to: Debian's docker-registry (anonymous, with htpasswd, or as a
// pull-through cache), containerd and dockerd on private sockets, skopeo,
// SeaweedFS as a real S3 server, Debian's redis-server, and the project's
// own binaries. Everything listens on 127.0.0.1 on a free port,
// lives in private temporary directories, is stopped by t.Cleanup, and keeps
// its output in log files whose tail is printed when the test fails.
//
// It also seeds registries with random multi-layer and multi-arch images
// (go-containerregistry) and offers a recording reverse proxy to see what a
// client sent upstream.
//
// Helpers that need a Debian package or SeaweedFS's weed skip the test when
// the program is missing and the test does not run as root
// (scripts/install-test-deps.sh installs them as root, and builds weed); as
// root a missing program is a test failure, so CI cannot silently skip. Helpers that need root (containerd, dockerd) skip
// with "needs root" otherwise.
package harness
