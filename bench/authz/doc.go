// Package authzbench measures what tollgate authz adds to every Docker
// daemon request: two real dockerds on one containerd, one with the plugin
// and one without, answer the same `docker inspect` (GET
// /images/NAME/json) in interleaved turns, so that machine load hits both
// alike. BENCHMARKS.md holds the figures and the command that reruns them.
package authzbench
