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
go build -o /tmp/pave-bench-buildcache ./bench/buildcache
go build -o /tmp/pave-bench-buildcache-pave ./cmd/pave
go build -o /tmp/pave-bench-buildcache-prog ./cmd/pave-gocacheprog
exec /tmp/pave-bench-buildcache -repo "$PWD" -pave /tmp/pave-bench-buildcache-pave -prog /tmp/pave-bench-buildcache-prog -go-cacher "$TOOLS/go-cacher" -gocached "$TOOLS/gocached" "$@"
