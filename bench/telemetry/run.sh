#!/bin/sh
# Benchmark Pave's telemetry store against VictoriaLogs v1.52.1 (see main.go).
# Installs VictoriaLogs outside the repository when missing, then runs the
# harness. Flags go to the harness: -lines N, -full (2M lines), -passes N.
set -eu
cd "$(dirname "$0")/../.."
TOOLS="${PAVE_TOOLS:-$HOME/.cache/pave-tools/bin}"
if [ ! -x "$TOOLS/victoria-logs" ]; then
	echo "installing VictoriaLogs v1.52.1 into $TOOLS" >&2
	mkdir -p "$TOOLS"
	(cd /tmp && GOBIN="$TOOLS" GOFLAGS= go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1)
fi
command -v taskset >/dev/null 2>&1 || { echo "installing util-linux (taskset)" >&2; apt-get install -y -qq util-linux >/dev/null; }
go build -o /tmp/pave-bench-telemetry ./bench/telemetry
exec /tmp/pave-bench-telemetry -victoria-logs "$TOOLS/victoria-logs" "$@"
