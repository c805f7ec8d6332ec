#!/usr/bin/env bash
# The whole test command: installs what the tests need (only where missing),
# then checks formatting, vets, lints and runs every test of the module.
#
#   scripts/test.sh              # everything
#   scripts/test.sh ./proxy/...  # go test only these packages (checks still run on all)
#
# Integration tests start real registries, skopeo, containerd and dockerd;
# those that need root skip with a message when run as another user.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '==> %s\n' "$*"; }

step "installing test dependencies (skipped where present)"
scripts/install-test-deps.sh

gobin="$(go env GOBIN)"
[[ -n $gobin ]] || gobin="$(go env GOPATH)/bin"

step "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))"
if [[ -n $unformatted ]]; then
	printf 'gofmt: these files need formatting (run gofmt -w):\n%s\n' "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
"$gobin/staticcheck" ./...

pkgs=("$@")
((${#pkgs[@]} > 0)) || pkgs=(./...)

step "go test ${pkgs[*]}"
# Two cores: two packages at a time keeps both busy while integration tests
# wait on subprocesses, without starving the timing-sensitive ones.
go test -count=1 -p 2 -timeout 12m "${pkgs[@]}"
