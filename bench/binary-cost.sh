#!/usr/bin/env bash
# What the object-store code costs the tollgate binary: size, start-up of
# `tollgate version`, and the RSS of an idle `tollgate proxy` (no shared tier
# configured), for four builds made from this tree with `go build -overlay`
# (the tree itself is not changed):
#   no-s3       the shared-tier drivers as before S3 was built in (filesystem only)
#   s3          what `go build ./cmd/...` ships: filesystem + distribution's s3-aws
#   s3+lease    s3 plus proxy/fleet/lease in use (aws-sdk-go-v2/service/s3, go-redis),
#               as the proxy links it once the fleet is wired in
#   clouddrivers  s3 + gcs + azure (-tags clouddrivers)
# It also checks that docker-credential-tollgate is the same in every build
# (the helper must not link any of it).
# Usage: bench/binary-cost.sh          (RUNS=200 version runs per build, ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$PWD

# Overlays: proxy_drivers.go without the s3 import; an extra file that
# calls lease.Open where the linker cannot prove it unreachable.
sed '/storage\/driver\/s3-aws/d' cmd/tollgate/proxy_drivers.go >"$work/drivers_nos3.go"
cat >"$work/lease_use.go" <<'GO'
package main

import (
	"context"
	"os"

	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

func init() {
	if spec := os.Getenv("TOLLGATE_BENCH_LEASE"); spec != "" {
		if s, err := lease.Open(context.Background(), spec, "bench", "s3", map[string]any{"bucket": "b", "region": "us-east-1"}); err == nil {
			_, _ = s.Acquire(context.Background(), "k", "h", 0)
		}
	}
}
GO
printf '{"Replace":{"%s":"%s"}}' "$root/cmd/tollgate/proxy_drivers.go" "$work/drivers_nos3.go" >"$work/nos3.json"
printf '{"Replace":{"%s":"%s"}}' "$root/cmd/tollgate/zz_bench_lease_use.go" "$work/lease_use.go" >"$work/lease.json"

build() { # name, extra go build args...
	local name=$1
	shift
	mkdir -p "$work/$name"
	CGO_ENABLED=0 go build -trimpath "$@" -o "$work/$name/" ./cmd/...
}
build no-s3 -overlay "$work/nos3.json"
build s3
build s3+lease -overlay "$work/lease.json"
build clouddrivers -tags clouddrivers
variants=(no-s3 s3 s3+lease clouddrivers)

printf '\n%-14s %12s %12s %12s\n' build "tollgate B" "stripped B" "helper B"
for v in "${variants[@]}"; do
	# Stripped as the runner image's -ldflags "-s -w" would (about the same size).
	cp "$work/$v/tollgate" "$work/strip"
	strip_size=$(objcopy --strip-all "$work/strip" 2>/dev/null && stat -c %s "$work/strip" || echo -)
	printf '%-14s %12s %12s %12s\n' "$v" "$(stat -c %s "$work/$v/tollgate")" "$strip_size" "$(stat -c %s "$work/$v/docker-credential-tollgate")"
done
# The helper: byte for byte the same without tags; with -tags the build
# info records the tag, so there compare the modules it links.
for v in s3 s3+lease; do
	cmp -s "$work/no-s3/docker-credential-tollgate" "$work/$v/docker-credential-tollgate" ||
		echo "WARNING: docker-credential-tollgate differs in build $v" >&2
done
deps() { go version -m "$1" | awk '$1 == "dep" {print $2, $3}'; }
[[ "$(deps "$work/no-s3/docker-credential-tollgate")" == "$(deps "$work/clouddrivers/docker-credential-tollgate")" ]] ||
	echo "WARNING: docker-credential-tollgate links other modules with -tags clouddrivers" >&2
if go version -m "$work/s3+lease/docker-credential-tollgate" | grep -Eq 'aws-sdk-go |service/s3|s3-aws|go-redis'; then
	echo "WARNING: the helper links S3 or Redis code" >&2
fi

echo
echo "tollgate version: mean wall time per run ($RUNS runs, $ROUNDS rounds interleaved)"
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	for v in "${variants[@]}"; do
		s=$(date +%s%N)
		for _ in $(seq "$RUNS"); do "$work/$v/tollgate" version >/dev/null; done
		e=$(date +%s%N)
		line+=$(printf '  %s %.1f ms' "$v" "$(echo "($e - $s) / $RUNS / 1000000" | bc -l)")
	done
	echo "$line"
done

echo
echo "idle tollgate proxy: VmRSS 3 s after /v2/ answers"
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	for v in "${variants[@]}"; do
		d=$(mktemp -d "$work/proxy.XXXX")
		printf 'proxy:\n  cache:\n    dir: %s/cache\n' "$d" >"$d/config.yaml"
		port=$((20000 + RANDOM % 10000))
		HOME=$d "$work/$v/tollgate" proxy --config "$d/config.yaml" --listen "127.0.0.1:$port" >"$d/log" 2>&1 &
		pid=$!
		for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
		sleep 3
		line+=$(printf '  %s %s kB' "$v" "$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")")
		kill "$pid"
		wait "$pid" 2>/dev/null || true
	done
	echo "$line"
done
