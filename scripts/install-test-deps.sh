#!/usr/bin/env bash
# Installs, only where missing, everything tollgate's tests need on a fresh
# Debian machine: the real registry, clients and engines the integration tests
# start (Debian's docker-registry, skopeo, docker.io, containerd, htpasswd,
# redis-server), systemd-analyze (verifies the example units), the Go
# modules, staticcheck, and SeaweedFS's `weed` (a real S3 server, built once
# from its Go module into the user cache dir). Safe to run again: a warm
# machine makes no apt call, no download and no build.
#
# Needs root for the apt part (CI and the development machines run as root).
# Debian's docker-registry, docker.io, containerd and redis-server packages would normally
# start system services on install; the tests start their own instances on
# private sockets and ports, so this script keeps the system ones from
# starting (policy-rc.d) and stops any that did.
set -euo pipefail

cd "$(dirname "$0")/.."

STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
# Debian packages the tests use, and a file or command that proves each is there.
APT_PACKAGES=(skopeo docker-registry docker.io containerd apache2-utils ca-certificates systemd redis-server)

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} > 0)) && [[ $(id -u) -ne 0 ]]; then
	log "missing Debian packages: ${missing[*]}; not root, so not installing them:"
	log "the integration tests that need them will skip (run this script as root to install them)"
elif ((${#missing[@]} > 0)); then
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Keep package scripts from starting system services (docker, containerd,
	# docker-registry) that would hold ports and sockets. Only add our policy
	# if the machine has none, and remove it again afterwards.
	policy=/usr/sbin/policy-rc.d
	added_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# added by tollgate scripts/install-test-deps.sh for the install only\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		added_policy=1
	fi
	cleanup_policy() { if ((added_policy)); then rm -f "$policy"; fi; }
	trap cleanup_policy EXIT
	# Other processes on a shared machine may hold the dpkg lock for a while.
	apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	# A mirror hiccup should not fail a CI run: three tries, a pause between.
	retry() {
		local n
		for n in 1 2 3; do
			"$@" && return 0
			((n < 3)) && { log "attempt $n of: $* failed; retrying"; sleep $((n * 10)); }
		done
		return 1
	}
	retry apt-get "${apt_opts[@]}" update -qq
	retry apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	cleanup_policy
	trap - EXIT
fi

# Stop system instances that a package script (or an earlier boot) started:
# the tests run their own on private sockets and random ports.
stop_service() {
	local name=$1 pidfile=$2
	if [[ -x /etc/init.d/$name ]] && [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		log "stopping system service $name (the tests start their own)"
		/etc/init.d/"$name" stop >/dev/null 2>&1 || kill "$(cat "$pidfile")" 2>/dev/null || true
	fi
}
stop_service docker /var/run/docker.pid
stop_service docker-registry /var/run/docker-registry.pid
stop_service containerd /var/run/containerd.pid
stop_service redis-server /run/redis/redis-server.pid

for cmd in skopeo docker-registry dockerd containerd ctr docker htpasswd systemd-analyze redis-server; do
	if [[ $(id -u) -eq 0 ]] && ! command -v "$cmd" >/dev/null; then
		log "$cmd still missing after install"
		exit 1
	fi
done

log "downloading Go modules"
go mod download

gobin="$(go env GOBIN)"
[[ -n $gobin ]] || gobin="$(go env GOPATH)/bin"
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
	log "installing staticcheck $STATICCHECK_VERSION into $gobin"
	GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

# SeaweedFS's weed: the S3 server the shared tier and lease tests run
# against. Its module has replace directives, so `go install` refuses it;
# build ./weed with the downloaded module as the main module instead, once
# per version, into the directory integration/harness looks in
# (${XDG_CACHE_HOME:-~/.cache}/tollgate/weed/VERSION/weed). About four
# minutes on two cores the first time. Keep the version in step with
# SeaweedFSVersion in integration/harness/seaweed.go.
WEED_VERSION="${WEED_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
weed_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/weed/$WEED_VERSION"
if [[ ! -x $weed_dir/weed ]]; then
	log "building SeaweedFS weed $WEED_VERSION into $weed_dir (once; a few minutes)"
	mod_json="$(go mod download -json "github.com/seaweedfs/seaweedfs@$WEED_VERSION")" || {
		log "go mod download github.com/seaweedfs/seaweedfs@$WEED_VERSION failed:"
		printf '%s\n' "$mod_json" >&2
		exit 1
	}
	mod_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$mod_json")"
	[[ -n $mod_dir && -d $mod_dir ]] || { log "go mod download of seaweedfs $WEED_VERSION gave no module directory"; exit 1; }
	mkdir -p "$weed_dir"
	# The module directory is read-only; go build writes nothing into it
	# (its go.sum is complete), only into the build cache and -o.
	(cd "$mod_dir" && GOFLAGS=-mod=readonly go build -o "$weed_dir/weed.tmp" ./weed)
	mv "$weed_dir/weed.tmp" "$weed_dir/weed"
fi
