// Command ecrhelper benchmarks docker credential helpers for ECR hosts
// against the wire-level fake AWS endpoints of integration/fakeaws: the
// whole-process latency of a warm `get` (median over -n runs, the helpers
// interleaved get by get) and the AWS API calls made by -concurrency cold
// `get`s started at once (-rounds rounds).
//
// bench/ecr-helper.sh runs it against docker-credential-ecr-login, and
// bench/compare.sh against the helper of an older tree, with -benchfmt so
// that bench/benchtable can read the medians:
//
//	go run ./bench/ecrhelper -helper tollgate=/path/docker-credential-tollgate \
//	    -helper ecr-login=/path/docker-credential-ecr-login
package main
