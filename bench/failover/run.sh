#!/bin/sh
# Failover benchmark: Pave's edge and fleet controller against haproxy as
# the edge in front of the same two embedded clusters (see main.go).
set -eu
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
command -v haproxy >/dev/null 2>&1 || {
	echo "installing the peer: haproxy" >&2
	apt-get update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends haproxy >/dev/null
}
exec go run ./bench/failover "$@"
