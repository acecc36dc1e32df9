#!/bin/sh
# The runner-scaling benchmark: a deterministic simulation (seconds) of a two-week job trace against
# queue-only (ARC), schedule-only, KEDA cron + queue, Pave and Pave's learned schedule.
# Extra arguments go to the program (-seed).
set -eu
cd "$(dirname "$0")/../.."
. scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
exec go run ./bench/runners "$@"
