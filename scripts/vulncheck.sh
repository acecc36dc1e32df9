#!/usr/bin/env bash
# Fails when code in the root module, kit or a service made by `pave new`
# calls a function with a known vulnerability: in a dependency (fixed by a
# `go get`) or in the Go toolchain's standard library (fixed by moving the
# go line of go.mod; see docs/security.md, "Toolchain policy"). Advisories
# for code that is imported but not called are not reported.
#
# Emergency opt-out, for standard-library advisories only (a fix not yet
# released, a toolchain that cannot move today): PAVE_VULN_ALLOW_STDLIB=1
# reports them under a loud warning instead of failing. Module advisories
# always fail.
#
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
allow=()
if [ "${PAVE_VULN_ALLOW_STDLIB:-}" = 1 ]; then
  allow=(-allow-stdlib)
  printf '\033[1;31mWARNING: PAVE_VULN_ALLOW_STDLIB=1: known vulnerabilities of the Go standard library will NOT fail this run (emergency opt-out; docs/security.md)\033[0m\n' >&2
fi
echo "govulncheck with $(go version) (GOTOOLCHAIN=$GOTOOLCHAIN)" >&2
go build -o "$PAVE_TOOLS/bin/pave-vulnverdict" ./scripts/vulndb
vulncheck() { # dir [env...]
  local dir=$1; shift
  printf '\033[1m==> govulncheck %s\033[0m\n' "$dir" >&2
  local json rc=0
  json=$(cd "$dir" && env "$@" govulncheck -db "file://$PAVE_VULNDB" -json ./...) || rc=$?
  if [ $rc -ne 0 ]; then
    echo "govulncheck failed in $dir (exit $rc)" >&2; status=1; return
  fi
  if ! printf '%s' "$json" | pave-vulnverdict -verdict "${allow[@]}"; then
    echo "govulncheck: reachable known vulnerabilities in $dir (above). Upgrade the module named (go get MODULE@VERSION && go mod tidy) or the Go toolchain (go.mod's go line); see docs/security.md" >&2
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
