#!/usr/bin/env bash
# What the object-store code costs the tollgate binary: size, start-up of
# `tollgate version`, and the RSS of an idle `tollgate proxy` (no shared tier
# configured), for three builds:
#   before        BASE (default 2caf32b, the last commit before S3 was built
#                 in), extracted with git archive: filesystem tier only
#   now           this tree: the s3 tier driver (distribution's s3-aws) and
#                 proxy/fleet/lease (aws-sdk-go-v2 service/s3, go-redis),
#                 which doctor and the fleet use
#   clouddrivers  this tree with -tags clouddrivers (+ gcs, azure)
# It also checks that docker-credential-tollgate links none of it in any
# build.
# Usage: bench/binary-cost.sh     (RUNS=200 version runs per build, ROUNDS=3, BASE=2caf32b)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-3}
BASE=${BASE:-2caf32b}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$PWD
mkdir -p "$work/base-src"
git archive "$BASE" | tar -x -C "$work/base-src"

build() { # name, source dir, extra go build args...
	local name=$1 src=$2
	shift 2
	mkdir -p "$work/$name"
	(cd "$src" && CGO_ENABLED=0 go build -trimpath "$@" -o "$work/$name/" ./cmd/...)
}
build before "$work/base-src"
build now "$root"
build clouddrivers "$root" -tags clouddrivers
variants=(before now clouddrivers)

printf '\n%-14s %12s %12s %12s\n' build "tollgate B" "stripped B" "helper B"
for v in "${variants[@]}"; do
	# Stripped as the runner image's -ldflags "-s -w" would (about the same size).
	cp "$work/$v/tollgate" "$work/strip"
	strip_size=$(objcopy --strip-all "$work/strip" 2>/dev/null && stat -c %s "$work/strip" || echo -)
	printf '%-14s %12s %12s %12s\n' "$v" "$(stat -c %s "$work/$v/tollgate")" "$strip_size" "$(stat -c %s "$work/$v/docker-credential-tollgate")"
done
# The helper: the same modules in every build, and no S3, Redis or
# storage-driver code (the build info records tags; its own code may differ
# between BASE and now).
deps() { go version -m "$1" | awk '$1 == "dep" {print $2, $3}'; }
syms() { go tool nm "$1" | awk '{print $NF}' | grep -Ec 'aws-sdk-go|service/s3|s3-aws|go-redis|storage/driver' || true; }
for v in "${variants[@]}"; do
	[[ "$(deps "$work/before/docker-credential-tollgate")" == "$(deps "$work/$v/docker-credential-tollgate")" ]] ||
		echo "WARNING: docker-credential-tollgate links other modules in build $v" >&2
	[[ "$(syms "$work/$v/docker-credential-tollgate")" == 0 ]] ||
		echo "WARNING: docker-credential-tollgate links S3, Redis or storage driver code in build $v" >&2
done

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
