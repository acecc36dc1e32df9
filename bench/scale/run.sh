#!/usr/bin/env bash
# The control plane's scale benchmark: 1,000 concurrent releases on SQLite
# and on PostgreSQL (Debian's postgresql, started in a temporary directory),
# then 20 kill -9 failovers of the leader. Extra arguments go to the
# program (-releases, -failovers, -lease, -duration, -backends, -workers,
# -cpuprofile, -blockprofile, -mutexprofile, -trace, -session-priority).
set -eu
cd "$(dirname "$0")/../.."
. scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
go build -o "${TMPDIR:-/tmp}/pave-bench-scale" ./bench/scale
exec "${TMPDIR:-/tmp}/pave-bench-scale" "$@"
