#!/bin/bash
# The embedded telemetry store against a VictoriaLogs v1.52.1 cluster behind
# the same interface (see main.go); the figures docs/telemetry.md's "When to
# move to VictoriaLogs" quotes. VictoriaLogs comes from scripts/deps.sh
# (~/.cache/pave-tools/bin). Flags go to the harness: -lines N, -writers N,
# -batch N, -passes N, -queries N.
set -eu
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
TOOLS="${PAVE_TOOLS:-$HOME/.cache/pave-tools}/bin"
[ -x "$TOOLS/victoria-logs" ] || { echo "VictoriaLogs is missing in $TOOLS: run scripts/deps.sh first" >&2; exit 1; }
go build -o /tmp/pave-bench-telemetry-vl ./bench/telemetry-vl
exec /tmp/pave-bench-telemetry-vl -victoria-logs "$TOOLS/victoria-logs" "$@"
