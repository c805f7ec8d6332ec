// Package proxybench measures image pulls through tollgate proxy against a
// direct pull and against distribution's own pull-through cache (Debian's
// docker-registry with proxy.remoteurl), over a rate-capped TCP relay
// (integration/harness.Relay) that stands in for the link to a real upstream. The measurements are the
// benchmarks in proxy_bench_test.go; BENCHMARKS.md holds the figures and
// the command that reruns them.
package proxybench
