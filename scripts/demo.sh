#!/usr/bin/env bash
# The main job on the embedded default: builds pave and runs `pave demo`,
# the whole release path on this machine (pass --keep to keep it running
# with the web UI afterwards). Needs only Go.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod
mkdir -p bin
echo "==> building pave" >&2
# -buildvcs=true: the workspace (go.work) would otherwise leave the commit out of `pave version`.
go build -buildvcs=true -o bin/pave ./cmd/pave
exec bin/pave demo "$@"
