#!/usr/bin/env bash
# Start-to-ready, stop and supervisor CPU of Pave's local runtime against a
# bare exec.Command supervisor, in one run, interleaved, on loopback. The
# benchmark and the services it starts are pinned to one core (children
# inherit the affinity) with GOMAXPROCS=1; every loop is bounded
# (PASSES x ROUNDS x REPLICAS processes).
#
#   bench/runtime/run.sh                        # 5 passes, 5 rounds of 4 replicas
#   PASSES=7 ROUNDS=10 REPLICAS=8 bench/runtime/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod

PASSES="${PASSES:-5}"
ROUNDS="${ROUNDS:-5}"
REPLICAS="${REPLICAS:-4}"
BIN="$(mktemp -d)"
trap 'rm -rf "$BIN"' EXIT

go build -o "$BIN/runtimebench" ./bench/runtime

PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN=(taskset -c 1)
fi
GOMAXPROCS=1 "${PIN[@]}" "$BIN/runtimebench" -passes "$PASSES" -rounds "$ROUNDS" -replicas "$REPLICAS"
