#!/bin/sh
# Benchmark Pave's embedded metrics store against Debian's Prometheus
# (apt-get install prometheus; scripts/deps.sh installs it), side by side:
# both scrape the same synthetic fleet at the same interval (see main.go).
# Flags go to the harness: -targets N (200), -duration D (3m), -interval D
# (5s), -passes N (7). The issue's full run: -duration 10m -interval 15s.
set -eu
cd "$(dirname "$0")/../.."
. scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
[ -x /usr/bin/prometheus ] || { echo "installing prometheus (Debian)" >&2; apt-get install -y -qq prometheus >/dev/null; }
command -v taskset >/dev/null 2>&1 || { echo "installing util-linux (taskset)" >&2; apt-get install -y -qq util-linux >/dev/null; }
go build -o /tmp/pave-bench-metrics ./bench/metrics
# The harness (the fleet and the query client) on core 0; it pins both
# servers to core 1 with GOMAXPROCS=1.
exec taskset -c 0 /tmp/pave-bench-metrics "$@"
