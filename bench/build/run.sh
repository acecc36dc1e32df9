#!/usr/bin/env bash
# pave build against ko v0.19.1, side by side: see main.go.
#   bash bench/build/run.sh              # 5 interleaved passes
#   bash bench/build/run.sh -passes 3
# ko is the peer, installed here (not by scripts/deps.sh, not in Pave's
# module) into $PAVE_TOOLS/ko/VERSION; the registry comes from scripts/deps.sh.
set -eu
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh
PAVE_TOOLS="${PAVE_TOOLS:-$HOME/.cache/pave-tools}"
KO_VERSION=v0.19.1
KO="$PAVE_TOOLS/ko/$KO_VERSION/ko"
if [ ! -x "$KO" ]; then
	echo "==> go install github.com/google/ko@$KO_VERSION" >&2
	(cd /tmp && GOBIN="$PAVE_TOOLS/ko/$KO_VERSION" GOFLAGS=-mod=mod go install "github.com/google/ko@$KO_VERSION")
fi
REGISTRY="$PAVE_TOOLS/bin/registry"
[ -x "$REGISTRY" ] || { echo "$REGISTRY is missing: run scripts/deps.sh first (it builds the distribution registry)" >&2; exit 1; }
go build -o /tmp/pave-bench-build ./bench/build
go build -o /tmp/pave-bench-build-pave ./cmd/pave
exec /tmp/pave-bench-build -pave /tmp/pave-bench-build-pave -ko "$KO" -registry "$REGISTRY" "$@"
