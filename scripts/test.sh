#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/deps.sh), checks
# formatting and vet, then runs every Go test with the race detector in the
# root module, kit and the examples. Browser tests leave screenshots in
# test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod

source scripts/deps.sh
export PATH="$PAVE_TOOLS/bin:$PATH"
export PAVE_ARTIFACTS="${PAVE_ARTIFACTS:-$ROOT/test-artifacts}"
mkdir -p "$PAVE_ARTIFACTS"

say "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './test/e2e/node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi

MODULES=(. ./kit)
for m in examples/*/; do [ -f "$m/go.mod" ] && MODULES+=("./${m%/}"); done

say "go mod tidy"
# Every module's go.mod and go.sum must be what `go mod tidy` makes of them;
# -diff changes nothing and fails, printing the difference, if tidy would.
# With the module cache warm (deps.sh) this needs no network.
for m in "${MODULES[@]}"; do
  if ! (cd "$m" && GOFLAGS=-mod=mod go mod tidy -diff); then
    echo "go.mod/go.sum of module $m are not tidy: run 'go mod tidy' in $m and commit the result" >&2; exit 1
  fi
done

say "kit builds with the Go of its own go line (its floor; docs/security.md, Toolchain policy)"
kit_go=$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' kit/go.mod)
(cd kit && GOWORK=off GOTOOLCHAIN="go$kit_go" go build ./...)

say "go vet"
for m in "${MODULES[@]}"; do (cd "$m" && go vet ./...); done

# The go command replays a package's passing result from its test cache
# while the test binary and everything the test process read (environment
# variables, files of the module) are unchanged; tests declare what their
# child processes read (internal/testproc). What no test can declare is a
# tool outside the module (the files of ~/.cache/pave-tools, not their
# directories' times, nor the pave-* that vulncheck.sh builds from the checkout, apt's chromium, postgres,
# prometheus...): when those differ from the ones the go cache's results
# were obtained with, every result is expired (go clean -testcache, for
# every checkout using this go cache: the tools are theirs too) and every
# test runs, as with PAVE_TEST_FRESH=1 (docs/testing.md, "Reusing results").
# Expiring rather than -count=1: the results of this run are kept.
tools_id() {
  {
    find "$PAVE_TOOLS" -maxdepth 3 \( -type f -o -type l \) -not -name '*.lock' -not -name .lock -not -name 'pave-*' -printf '%p %s %T@\n' | LC_ALL=C sort
    dpkg-query -W -f '${Package} ${Version}\n' 2>/dev/null || true
    command -v node chromium 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}
gocache=$(go env GOCACHE)
tools_stamp="$gocache/pave-tools-of-test-results"
[ -d "$gocache" ] || tools_stamp=/dev/null # GOCACHE=off: nothing is reused anyway
tools_now=$(tools_id)
if [ "${PAVE_TEST_FRESH:-}" = 1 ]; then
  echo "PAVE_TEST_FRESH=1: every test runs (go clean -testcache)"
  go clean -testcache
elif [ "$(cat "$tools_stamp" 2>/dev/null)" != "$tools_now" ]; then
  echo "the tools differ from those of the go cache's test results (or none are recorded): every test runs (go clean -testcache)"
  go clean -testcache
fi
[ "$tools_stamp" = /dev/null ] || echo "$tools_now" >"$tools_stamp"

# Every test event is kept (go test -json) in $PAVE_ARTIFACTS/go-test.json;
# scripts/testreport prints what plain `go test` prints (ok/FAIL a package,
# the output of failed tests; also in go-test.log), then where the time went
# (test-times.txt). Most tests wait on servers and processes rather than
# compute, so more of them run at once than there are cores: -parallel for
# the t.Parallel tests of a package, -p for packages (PAVE_TEST_P,
# PAVE_TEST_PARALLEL override; docs/testing.md).
say "go test -race"
status=0
report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT
go build -o "$report/testreport" ./scripts/testreport
: >"$PAVE_ARTIFACTS/go-test.log"
: >"$PAVE_ARTIFACTS/go-test.json"
cores=$(nproc 2>/dev/null || echo 2)
TEST_P=${PAVE_TEST_P:-$((cores > 4 ? cores : 4))}
TEST_PARALLEL=${PAVE_TEST_PARALLEL:-$((cores > 3 ? 2 * cores : 6))}
echo "go test -p $TEST_P -parallel $TEST_PARALLEL ($cores cores)"
# -timeout stops a hung test binary. internal/analysis yields the CPU
# (docs/testing.md), so a busy machine stretches it: 401 s in CI, 975 s
# here beside one busy loop; 30 minutes leaves it room and still ends a
# hang well inside CI's 90.
TEST_FLAGS=(-race -timeout 30m -p "$TEST_P" -parallel "$TEST_PARALLEL")
# go test starts packages in the order it is given them: the slowest first
# (by the times of the last runs here, scripts/package-times.txt before the
# first), so that no long package starts last and holds up the end.
times="$PAVE_ARTIFACTS/package-times.txt"
[ -f "$times" ] || cp scripts/package-times.txt "$times"
for m in "${MODULES[@]}"; do
  pkgs=$(cd "$m" && go list -e ./... | "$report/testreport" -order "$times")
  # shellcheck disable=SC2086 # one package a word
  (cd "$m" && go test -json "${TEST_FLAGS[@]}" $pkgs 2>&1) |
    "$report/testreport" -json "$PAVE_ARTIFACTS/go-test.json" | tee -a "$PAVE_ARTIFACTS/go-test.log" || status=1
done
say "where the time went (every test: $PAVE_ARTIFACTS/go-test.json)"
"$report/testreport" -summary -top 20 -times "$times" "$PAVE_ARTIFACTS/go-test.json" | tee "$PAVE_ARTIFACTS/test-times.txt"
say "govulncheck"
bash scripts/vulncheck.sh || status=1
if [ $status -ne 0 ]; then say "FAILED (see $PAVE_ARTIFACTS/go-test.log and the govulncheck output above)"; exit 1; fi
say "all tests passed"
