#!/bin/sh
# The release-safety benchmark: Pave's engine vs Flagger's Istio example and Flagger at its tightest on
# the same simulated traffic. Extra arguments go to the program (-scale, -seed).
set -eu
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
exec go run ./bench/release "$@"
