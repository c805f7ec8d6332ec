#!/usr/bin/env bash
# Side-by-side rerun of the proxy and credential-helper targets of BENCHMARKS.md
# for two trees of tollgate, interleaved so that load on a shared machine hits
# both alike:
#   cold     one cold pull over the 1 Gbit/s relay through each tree's proxy, and
#            direct (target: within 5 % of direct); CLIENTS concurrent cold
#            clients: upstream GETs per blob (1) and the proxy's peak RSS (< 100 MiB)
#   warm     warm pull with a verifying client through each proxy, against the
#            two bare yardsticks (sendfile, write(2) from a 1 MiB buffer; target:
#            within 1.10x of the faster) and distribution 2.8, with CPU per warm
#            GiB; the same with a client that does not hash (information)
#   helper   whole-process warm `get` of each tree's docker-credential-tollgate
#            against fake AWS endpoints (target: new no slower than old)
# then prints one table (bench/benchtable).
#
# Usage: bench/compare.sh OLD_REV [NEW_REV]
#   OLD_REV  a git revision (the tree before a change), e.g. 1d3ec3d
#   NEW_REV  a git revision, or omitted / "." for this working tree as it is
#            (uncommitted changes included)
# The trees are exported with `git archive` into a scratch directory (no git
# worktree is created) and both built as the runner image is (static,
# stripped). The benchmark harness, client and yardsticks come from the NEW
# tree and measure both trees' binaries, so OLD_REV needs no benchmark code.
#
# Environment (defaults in brackets):
#   SIZE_MIB [1024] LAYERS [8]   the image pulled: LAYERS layers, SIZE_MIB in all
#   CLIENTS [20]                 concurrent cold clients
#   COLD_ROUNDS [3]              rounds of the cold pulls (direct, old, new), then
#                                as many of the concurrent clients (old, new)
#   WARM_ROUNDS [5]              rounds of the warm groups
#   HELPER_N [300]               warm gets per helper and credential source
#   PARTS ["cold warm helper"]   which parts to run
#   OUT [$TMPDIR/tollgate-compare-DATE]   where the outputs and table.md are kept
# Needs Debian's docker-registry (scripts/install-test-deps.sh installs it).
# At the defaults (1 GiB) the benchmarks take about 10 minutes on a quiet 2-core
# machine, the cold rounds most of it (COLD_ROUNDS x ~1.5 min, warm ~2.5 min,
# helper ~1 min); the builds of two trees add up to 5 minutes with a cold
# build cache. SIZE_MIB=64 COLD_ROUNDS=1 WARM_ROUNDS=2 HELPER_N=50 is a
# one-minute check that everything works (its figures mean little).
set -euo pipefail
shopt -s inherit_errexit

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 && $1 != -h && $1 != --help ]] || usage

cd "$(dirname "$0")/.."
repo=$PWD
old_rev=$1
new_rev=${2:-.}

SIZE_MIB=${SIZE_MIB:-1024}
LAYERS=${LAYERS:-8}
CLIENTS=${CLIENTS:-20}
COLD_ROUNDS=${COLD_ROUNDS:-3}
WARM_ROUNDS=${WARM_ROUNDS:-5}
HELPER_N=${HELPER_N:-300}
PARTS=${PARTS:-cold warm helper}
OUT=${OUT:-${TMPDIR:-/tmp}/tollgate-compare-$(date -u +%Y%m%dT%H%M%SZ)}

if ! command -v docker-registry >/dev/null; then
	echo "compare.sh: Debian's docker-registry is missing (the upstream registry of the proxy benchmarks): run scripts/install-test-deps.sh as root" >&2
	exit 1
fi
for rev in "$old_rev" "$new_rev"; do
	[[ $rev == . ]] || git -C "$repo" rev-parse -q --verify "$rev^{commit}" >/dev/null ||
		{ echo "compare.sh: '$rev' is not a commit of this repository" >&2; exit 2; }
done
for part in $PARTS; do
	case $part in cold | warm | helper) ;; *) echo "compare.sh: unknown part '$part' in PARTS (cold, warm, helper)" >&2; exit 2 ;; esac
done

describe() { # the commit a revision names, for the table's heading
	if [[ $1 == . ]]; then
		echo "working tree at $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- || echo ' + uncommitted changes')"
	else
		echo "$1 = $(git -C "$repo" rev-parse --short "$1^{commit}")"
	fi
}
old_desc=$(describe "$old_rev")
new_desc=$(describe "$new_rev")

work=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-compare-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# tree REV DIR: the source of REV, exported into DIR ("." is this tree).
tree() {
	if [[ $1 == . ]]; then
		echo "$repo"
		return
	fi
	mkdir -p "$2"
	git -C "$repo" archive --format=tar "$1^{commit}" | tar -x -C "$2"
	echo "$2"
}
old_src=$(tree "$old_rev" "$work/old-src")
new_src=$(tree "$new_rev" "$work/new-src")

echo "== building: old = $old_desc; new = $new_desc" >&2
for side in old new; do
	src=${side}_src
	# As the runner image's Dockerfile builds them (and bench/ecr-helper.sh).
	(cd "${!src}" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/$side/" ./cmd/...)
	for bin in tollgate docker-credential-tollgate; do
		[[ -x $work/$side/$bin ]] || { echo "compare.sh: the $side tree builds no $bin" >&2; exit 1; }
	done
done
(cd "$new_src" && go test -c -o "$work/proxybench.test" ./bench/proxy &&
	go build -o "$work/" ./bench/ecrhelper ./bench/benchtable)

{
	echo "# bench/compare.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# old: $old_desc"
	echo "# new: $new_desc"
	echo "# image $SIZE_MIB MiB in $LAYERS layers, $CLIENTS concurrent clients, cold rounds $COLD_ROUNDS, warm rounds $WARM_ROUNDS, helper gets $HELPER_N"
} | tee "$OUT/heading.txt"

# bench GROUPS ROUNDS FILE: run the proxy benchmarks of GROUPS (go test -bench
# pattern below BenchmarkProxyPull) with both trees' proxies.
bench() {
	echo "== proxy benchmarks $1, $2 rounds -> $3" >&2
	(cd "$new_src/bench/proxy" && "$work/proxybench.test" -test.run '^$' -test.bench "ProxyPull/$1" \
		-test.benchtime 1x -test.timeout 120m \
		-image-mib "$SIZE_MIB" -layers "$LAYERS" -clients "$CLIENTS" -rounds "$2" \
		-tollgate "old=$work/old" -tollgate "new=$work/new") >"$3" 2>&1 || {
		tail -n 40 "$3" >&2
		echo "compare.sh: the proxy benchmarks failed; the whole output is in $3" >&2
		exit 1
	}
	grep '^Benchmark' "$3" >&2
}

results=()
for part in $PARTS; do
	case $part in
	cold)
		# Direct and each proxy over the relay; the concurrent clients through
		# each proxy (distribution's own cold runs take minutes: not here).
		bench "(cold|cold-${CLIENTS}clients)/(direct|tollgate)" "$COLD_ROUNDS" "$OUT/proxy-cold.txt"
		results+=("$OUT/proxy-cold.txt")
		;;
	warm)
		bench "(client-hash-only|warm)" "$WARM_ROUNDS" "$OUT/proxy-warm.txt"
		results+=("$OUT/proxy-warm.txt")
		;;
	helper)
		echo "== credential helper, $HELPER_N warm gets each -> $OUT/helper.txt" >&2
		"$work/ecrhelper" -n "$HELPER_N" -rounds 1 -benchfmt \
			-helper "old=$work/old/docker-credential-tollgate" \
			-helper "new=$work/new/docker-credential-tollgate" >"$OUT/helper.txt"
		results+=("$OUT/helper.txt")
		;;
	esac
done

echo
cat "$OUT/heading.txt"
echo
"$work/benchtable" "${results[@]}" | tee "$OUT/table.md"
echo
echo "Outputs and table: $OUT" >&2
