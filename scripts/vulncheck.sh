#!/usr/bin/env bash
# Fails when code in the root module, kit or a service made by `pave new`
# calls a function with a known vulnerability in a dependency. Advisories of
# the Go toolchain's standard library that the code calls are reported as
# the Go upgrade they need, and fail only with PAVE_VULN_STRICT_STDLIB=1
# (the fix is a new toolchain on every machine, not a change here).
# Advisories for code that is imported but not called are not reported.
# Reads the offline database scripts/deps.sh builds ($PAVE_VULNDB); run
# alone it runs deps.sh first. scripts/test.sh runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod

if [ -z "${PAVE_VULNDB:-}" ]; then source scripts/deps.sh; fi
PAVE_TOOLS="${PAVE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pave-tools}"
export PATH="$PAVE_TOOLS/bin:$PATH"
command -v govulncheck >/dev/null || { echo "govulncheck is not in $PAVE_TOOLS/bin: run scripts/deps.sh" >&2; exit 1; }
[ -f "$PAVE_VULNDB/index/modules.json" ] || { echo "no vulnerability database at $PAVE_VULNDB: run scripts/deps.sh" >&2; exit 1; }

status=0
# PAVE_VULN_STRICT_STDLIB=1 also fails on the Go toolchain's own advisories
# (fixed by upgrading Go, not by this repository's modules; see docs/security.md).
strict=()
[ "${PAVE_VULN_STRICT_STDLIB:-}" = 1 ] && strict=(-strict-stdlib)
go build -o "$PAVE_TOOLS/bin/pave-vulnverdict" ./scripts/vulndb
vulncheck() { # dir [env...]
  local dir=$1; shift
  printf '\033[1m==> govulncheck %s\033[0m\n' "$dir" >&2
  local json rc=0
  json=$(cd "$dir" && env "$@" govulncheck -db "file://$PAVE_VULNDB" -json ./...) || rc=$?
  if [ $rc -ne 0 ]; then
    echo "govulncheck failed in $dir (exit $rc)" >&2; status=1; return
  fi
  if ! printf '%s' "$json" | pave-vulnverdict -verdict "${strict[@]}"; then
    echo "govulncheck: reachable known vulnerabilities in $dir (above). Upgrade the module named (go get MODULE@VERSION && go mod tidy); see docs/security.md" >&2
    status=1
  fi
}
vulncheck .
vulncheck ./kit GOWORK=off # kit as a service's build sees it: without the workspace

# A service as `pave new` makes it today (kit replaced by this checkout's kit).
svc=$(mktemp -d)
trap 'rm -rf "$svc"' EXIT
go run ./cmd/pave new demo-svc --dir "$svc/demo-svc" >/dev/null
vulncheck "$svc/demo-svc" GOWORK=off
exit $status
