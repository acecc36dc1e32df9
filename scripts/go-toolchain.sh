# Sourced by every script that runs go (scripts/*.sh, bench/*/run.sh,
# .ci/run): builds use the Go that the root go.mod names, not whatever Go
# the machine has. A machine starts on its own Go and, with
# GOTOOLCHAIN=local (the Debian and CI images set it), ignores go.mod's go
# line, so it would refuse to build ("go.mod requires go >= …") or, worse,
# build with an older standard library that has known vulnerabilities
# (docs/security.md, "Toolchain policy"). The toolchain comes from the Go
# module proxy once and is kept in the module cache.
#
# To move Pave to a new Go: change the go line of go.mod, go.work and
# test/apiserver/go.mod, DefaultGoVersion in internal/scaffold/answers.go
# and the export line of README.md's tour; this file follows go.mod.
_pave_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAVE_GO_VERSION=$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$_pave_root/go.mod")
if [ -z "$PAVE_GO_VERSION" ]; then
  echo "scripts/go-toolchain.sh: no 'go 1.N.P' line in $_pave_root/go.mod" >&2
  exit 1
fi
export PAVE_GO_VERSION
export GOTOOLCHAIN="go$PAVE_GO_VERSION"
unset _pave_root
