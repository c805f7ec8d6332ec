// Package proxybench measures image pulls through tollgate proxy against a
// direct pull, against two bare file servers (the yardsticks: sendfile, and
// write(2) from a 1 MiB buffer, each in a process of its own) and against
// distribution's own pull-through cache (Debian's docker-registry with
// proxy.remoteurl), cold over a rate-capped TCP relay
// (integration/harness.Relay) that stands in for the link to a real
// upstream, and warm from each server's storage. The tollgate measured is
// built from this tree, or given with -tollgate NAME=PATH (repeatable), so
// that this harness can measure an older tree's binary side by side with a
// newer one (bench/compare.sh). The measurements are the benchmarks in
// proxy_bench_test.go; BENCHMARKS.md holds the targets, the figures and the
// commands that rerun them.
package proxybench
