#!/bin/bash
# Benchmark Pave's telemetry store against VictoriaLogs v1.52.1 (see main.go).
# Installs VictoriaLogs outside the repository when missing, then runs the
# harness. Flags go to the harness: -lines N, -full (2M lines), -passes N,
# -queries N, -s3-delay D, -s3-core C (SeaweedFS on core 0, the default, or 1, the servers'), -blob=false (no S3 phase), -pprof (pave-telemetry --pprof),
# -only WORD (only the query classes whose name contains WORD). The blob phase needs SeaweedFS's weed, which
# scripts/deps.sh builds into ~/.cache/pave-tools/bin.
set -eu
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
TOOLS="${PAVE_TOOLS:-$HOME/.cache/pave-tools/bin}"
if [ ! -x "$TOOLS/victoria-logs" ]; then
	echo "installing VictoriaLogs v1.52.1 into $TOOLS" >&2
	mkdir -p "$TOOLS"
	(cd /tmp && GOBIN="$TOOLS" GOFLAGS= go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1)
fi
command -v taskset >/dev/null 2>&1 || { echo "installing util-linux (taskset)" >&2; apt-get install -y -qq util-linux >/dev/null; }
go build -o /tmp/pave-bench-telemetry ./bench/telemetry
# Pave's server: the pave-telemetry binary, as users run the store on its own.
go build -o /tmp/pave-bench-pave-telemetry ./cmd/pave-telemetry
case " $* " in *" -blob=false "*) ;; *) [ -x "$TOOLS/weed" ] || { echo "SeaweedFS's weed is missing in $TOOLS: run scripts/deps.sh first (or pass -blob=false)" >&2; exit 1; } ;; esac
# The harness (the load generator and query client) on core 0; it pins the
# servers and SeaweedFS to core 1.
exec taskset -c 0 /tmp/pave-bench-telemetry -pave-telemetry /tmp/pave-bench-pave-telemetry -victoria-logs "$TOOLS/victoria-logs" -weed "$TOOLS/weed" "$@"
