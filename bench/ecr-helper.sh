#!/usr/bin/env bash
# Benchmark of docker-credential-tollgate for ECR hosts, side by side with
# docker-credential-ecr-login v0.12.0, on the wire-level fake AWS endpoints of
# integration/fakeaws (loopback only):
#   - whole-process warm `get` latency (median, p90, min over N runs), with an
#     instance role (IMDSv2) and with static env keys;
#   - AWS API calls made by CONCURRENCY cold `get`s started at once (ROUNDS rounds).
# Usage: bench/ecr-helper.sh            (N=100 CONCURRENCY=50 ROUNDS=5 by default)
#        N=200 ECR_LOGIN=/path/to/docker-credential-ecr-login bench/ecr-helper.sh
# ecr-login is installed into a scratch directory (never into the module) when
# ECR_LOGIN is not given: it needs the Go module proxy once.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
CONCURRENCY=${CONCURRENCY:-50}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

args=()
if [ -d cmd/docker-credential-tollgate ]; then
	# Both commands: the helper runs `tollgate ecr-token` beside it on a miss.
	# Built as the runner image's Dockerfile builds them (static, stripped):
	# measure what ships. CGO_ENABLED=1 BUILD_FLAGS= gives a plain `go build`
	# (cgo on, dynamically linked: ~0.7 ms slower per get here).
	if [ -n "${BUILD_FLAGS+x}" ]; then read -ra flags <<<"$BUILD_FLAGS"; else flags=(-trimpath "-ldflags=-s -w"); fi
	CGO_ENABLED=${CGO_ENABLED:-0} go build "${flags[@]}" -o "$work/" ./cmd/...
	args+=(-helper "tollgate=$work/docker-credential-tollgate")
else
	echo "note: cmd/docker-credential-tollgate is not in this tree; measuring ecr-login only" >&2
fi

if [ -z "${ECR_LOGIN:-}" ]; then
	scratch=${TMPDIR:-/tmp}/tollgate-bench-ecr-login
	ECR_LOGIN=$scratch/docker-credential-ecr-login
	if [ ! -x "$ECR_LOGIN" ]; then
		(cd "$work" && GOFLAGS= GOBIN="$scratch" go install \
			github.com/awslabs/amazon-ecr-credential-helper/ecr-login/cli/docker-credential-ecr-login@v0.12.0)
	fi
fi
args+=(-helper "ecr-login=$ECR_LOGIN")

go build -o "$work/ecrhelper" ./bench/ecrhelper
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(go version | cut -d' ' -f3), load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/ecrhelper" -n "$N" -concurrency "$CONCURRENCY" -rounds "${ROUNDS:-5}" "${args[@]}"
