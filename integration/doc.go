// Package integration holds tests that start real components: the built
// binaries, registries, container engines and wire-level fake AWS endpoints.
package integration
