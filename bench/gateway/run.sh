#!/bin/sh
# Benchmark the embedded gateway against nginx and haproxy (see main.go).
# Installs the peers from Debian when missing, then runs the harness.
set -eu
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
missing=""
for t in nginx haproxy wrk taskset; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
	echo "installing peers:$missing" >&2
	apt-get update -qq && apt-get install -y -qq nginx haproxy wrk util-linux >/dev/null
fi
exec go run ./bench/gateway "$@"
