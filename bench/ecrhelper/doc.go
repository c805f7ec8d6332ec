// Command ecrhelper benchmarks docker credential helpers for ECR hosts
// against the wire-level fake AWS endpoints of integration/fakeaws: the
// whole-process latency of a warm `get` (median over -n runs) and the AWS
// API calls made by -concurrency cold `get`s started at once.
//
// It is run by bench/ecr-helper.sh, which builds the helpers first:
//
//	go run ./bench/ecrhelper -helper tollgate=/path/docker-credential-tollgate \
//	    -helper ecr-login=/path/docker-credential-ecr-login
package main
