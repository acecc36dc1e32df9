#!/usr/bin/env bash
# Installs everything the tests, benchmarks and the demo need on a fresh
# Debian machine with Go: Debian packages, npm packages for the browser
# tests, and Go tools built into a cache directory outside the repository.
# Safe to run again: each step is skipped when its result is present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod

PAVE_TOOLS="${PAVE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pave-tools}"
export PAVE_TOOLS
mkdir -p "$PAVE_TOOLS/bin"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages: chromium (UI tests), prometheus (promtool), nginx,
# haproxy and wrk (gateway peers), git and patch (pave upgrade tests),
# util-linux (taskset for benchmarks), prometheus-alertmanager (the external
# Alertmanager the alerting tests send to), nodejs/npm when missing.
APT_PKGS=(chromium prometheus prometheus-alertmanager nginx haproxy wrk git patch procps util-linux ca-certificates)
# postgresql: the state store's production backend, started by its tests as an ordinary user.
APT_PKGS+=(postgresql)
command -v node >/dev/null || APT_PKGS+=(nodejs)
command -v npm >/dev/null || APT_PKGS+=(npm)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages for the browser tests (playwright-core drives Debian's chromium).
# Again when test/e2e/package-lock.json changed since the last install (the
# stamp is its copy), so a warm run skips npm and a changed lock is honoured.
if [ ! -d test/e2e/node_modules/playwright-core ] || ! cmp -s test/e2e/package-lock.json test/e2e/node_modules/.package-lock.json.pave 2>/dev/null; then
  say "npm: installing test/e2e packages"
  npm ci --prefix test/e2e --no-audit --no-fund --loglevel=error >/dev/null
  cp test/e2e/package-lock.json test/e2e/node_modules/.package-lock.json.pave
fi

# The web UI's libraries (uPlot), pinned in web/package-lock.json, copied into
# web/static/lib (git-ignored) where go:embed picks them up.
if [ ! -f web/static/lib/uplot/uPlot.esm.js ] || [ ! -f web/static/lib/dagre/dagre.esm.js ] || ! cmp -s web/package-lock.json web/node_modules/.package-lock.json.pave 2>/dev/null; then
  say "npm: installing web packages"
  npm ci --prefix web --no-audit --no-fund --loglevel=error >/dev/null
  mkdir -p web/static/lib/uplot
  cp web/node_modules/uplot/dist/uPlot.esm.js web/node_modules/uplot/dist/uPlot.min.css web/node_modules/uplot/LICENSE web/static/lib/uplot/
  # @dagrejs/dagre lays out the service map (graphlib is bundled in its ESM build).
  mkdir -p web/static/lib/dagre
  cp web/node_modules/@dagrejs/dagre/dist/dagre.esm.js web/node_modules/@dagrejs/dagre/LICENSE web/static/lib/dagre/
  cp web/package-lock.json web/node_modules/.package-lock.json.pave
fi

# Go tools, built from the module proxy into $PAVE_TOOLS/bin, keyed by version.
go_tool() { # name module@version
  local name=$1 mod=$2 stamp="$PAVE_TOOLS/bin/.$1.version"
  if [ ! -x "$PAVE_TOOLS/bin/$name" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$mod" ]; then
    say "go install $mod"
    GOBIN="$PAVE_TOOLS/bin" GOFLAGS=-mod=mod go install "$mod"
    echo "$mod" >"$stamp"
  fi
}
# The module cache holds everything kit and its dependencies' tests need:
# `pave new` computes a new service's go.sum offline from it.
say "Go modules (kit's whole graph, for pave new's offline go.sum)"
# A copy of kit's go.mod takes the download, so kit/go.sum stays tidy.
modcopy=$(mktemp -d)
cp kit/go.mod kit/go.sum "$modcopy/"
(cd kit && GOWORK=off GOFLAGS="-mod=mod -modfile=$modcopy/go.mod" go mod download all)
rm -rf "$modcopy"
go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5@v5.8.1
go_tool govulncheck golang.org/x/vuln/cmd/govulncheck@v1.9.0
# Sloth (Apache-2.0), the peer of bench/alerting: the bench runs
# `sloth generate` on the same SLOs and replays the rules it writes.
# Built in the background like the other peers: only the bench needs it.
( go_tool sloth github.com/slok/sloth/cmd/sloth@v0.16.0 ) &
sloth_pid=$!
# go-tool-cache, the peer of bench/buildcache (a GOCACHEPROG client and its
# production server); built in the background, in parallel with the rest.
GO_TOOL_CACHE=github.com/bradfitz/go-tool-cache@v0.0.0-20260722201841-0bb331e19f64
( go_tool go-cacher "${GO_TOOL_CACHE/@//cmd/go-cacher@}" && go_tool gocached "${GO_TOOL_CACHE/@//cmd/gocached@}" ) &
go_tool_cache_pid=$!

# Go vulnerability database for govulncheck, built offline (the machines
# reach no vuln.go.dev) from the OSV entries of the golang.org/x/vulndb
# module, which the module proxy serves. Cached outside the repository and
# keyed by that module's version: bump VULNDB_VERSION (go list -m
# golang.org/x/vulndb@latest) to take in newer advisories.
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
PAVE_VULNDB="$PAVE_TOOLS/vulndb/$VULNDB_VERSION"
export PAVE_VULNDB
if [ ! -f "$PAVE_VULNDB/index/modules.json" ]; then
  say "building the Go vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION"
  osv=$(cd /tmp && GOWORK=off GOFLAGS=-mod=mod go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$PAVE_TOOLS/vulndb"
  rm -rf "$PAVE_VULNDB"
  go run ./scripts/vulndb -osv "$osv/data/osv" -out "$PAVE_VULNDB"
fi

# SeaweedFS (Apache-2.0) as a real S3-compatible server for the telemetry
# cold tier's S3 tests. `go install` refuses it (its go.mod has replace
# directives), so build its main package from the module source, once per
# version.
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
if [ ! -x "$PAVE_TOOLS/bin/weed" ] || [ "$(cat "$PAVE_TOOLS/bin/.weed.version" 2>/dev/null)" != "$SEAWEEDFS_VERSION" ]; then
  say "building SeaweedFS $SEAWEEDFS_VERSION (S3 test server; several minutes, once)"
  src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  work=$(mktemp -d)
  cp -r "$src" "$work/seaweedfs" && chmod -R u+w "$work/seaweedfs"
  (cd "$work/seaweedfs" && GOFLAGS=-mod=mod go build -o "$PAVE_TOOLS/bin/weed" ./weed)
  rm -rf "$work"
  echo "$SEAWEEDFS_VERSION" >"$PAVE_TOOLS/bin/.weed.version"
fi

# The CNCF distribution registry, the real registry the pave build tests
# push to and pull from; built in the background, in parallel with the rest.
DISTRIBUTION=github.com/distribution/distribution/v3/cmd/registry@v3.1.2
( go_tool registry "$DISTRIBUTION" ) &
registry_pid=$!

# VictoriaLogs (Apache-2.0), the telemetry-store: victorialogs://… backend's
# real peer: the tests run its one binary as two storage nodes and an
# insert/select node. Its go.mod (go 1.26.5, no replace directives) lets
# `go install` build app/victoria-logs; in the background, keyed by version.
VICTORIALOGS=github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1
( go_tool victoria-logs "$VICTORIALOGS" ) &
victorialogs_pid=$!

# A real kube-apiserver and etcd for the Kubernetes integration tests
# (no kubelet: tests play the Deployment controller), built once per version.
say "kube-apiserver and etcd for the Kubernetes tests"
PAVE_TOOLS="$PAVE_TOOLS" bash scripts/kube-apiserver.sh >/dev/null
wait "$go_tool_cache_pid" # go-tool-cache (the bench/buildcache peer)
wait "$registry_pid" # distribution registry (pave build tests)
wait "$victorialogs_pid" # VictoriaLogs (telemetry-store: victorialogs:// tests)
wait "$sloth_pid" # Sloth (the bench/alerting peer)
