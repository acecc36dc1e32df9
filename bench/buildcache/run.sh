#!/bin/sh
# Pave's shared build cache against no cache, Go's warm local cache and
# go-tool-cache (go-cacher + gocached), side by side: see main.go.
#   bash bench/buildcache/run.sh                       # the issue's workload: ./... of this repository
#   bash bench/buildcache/run.sh -pkgs './internal/stats/... ./internal/analysis/...' -passes 5
#   bash bench/buildcache/run.sh -pkgs './internal/config/...' -passes 5 -cold-passes 1
# go-tool-cache is built by scripts/deps.sh into ~/.cache/pave-tools/bin.
set -eu
cd "$(dirname "$0")/../.."
TOOLS="${PAVE_TOOLS:-$HOME/.cache/pave-tools}/bin"
for t in go-cacher gocached; do
	[ -x "$TOOLS/$t" ] || { echo "$TOOLS/$t is missing: run scripts/deps.sh first (it builds go-tool-cache)" >&2; exit 1; }
done
# Binaries of this run only: a run beside another must not swap them.
BIN=$(mktemp -d /tmp/pave-bench-buildcache-bin.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/bench" ./bench/buildcache
go build -o "$BIN/pave" ./cmd/pave
go build -o "$BIN/prog" ./cmd/pave-gocacheprog
"$BIN/bench" -repo "$PWD" -pave "$BIN/pave" -prog "$BIN/prog" -go-cacher "$TOOLS/go-cacher" -gocached "$TOOLS/gocached" "$@"
