#!/usr/bin/env bash
# Builds (once per version) the real kube-apiserver and etcd that the
# Kubernetes integration tests start (internal/kube/kubetest), from the Go
# module proxy through the build-only module test/apiserver, into a cache
# outside the repository. Later runs check the binaries and reuse them in
# about a second. Progress goes to stderr; the last line of stdout is the
# directory (what KUBEBUILDER_ASSETS may point at).
#
#   scripts/kube-apiserver.sh          # → ~/.cache/pave-tools/k8s/v1.37.2
#   PAVE_TOOLS=/opt/pave-tools scripts/kube-apiserver.sh
#
# To rebuild, delete the directory it prints.
set -euo pipefail
cd "$(dirname "$0")/../test/apiserver"

K8S_VERSION=v1.37.2 # k8s.io/kubernetes in test/apiserver/go.mod
dir="${PAVE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pave-tools}/k8s/$K8S_VERSION"
etcd_version=$(sed -n 's/^[[:space:]]*go\.etcd\.io\/etcd\/server\/v3 \(v[^ ]*\).*/\1/p' go.mod | head -1)
[[ -n $etcd_version ]] || { echo "test/apiserver/go.mod requires no go.etcd.io/etcd/server/v3" >&2; exit 1; }
# The Go of the root go.mod (scripts/go-toolchain.sh), which test/apiserver's
# go line matches; etcd's own toolchain line (an older patch release) is
# ignored for a dependency. The cache is keyed by K8S_VERSION and the
# binaries' --version, not by Go: binaries built by an earlier Go are
# reused (they are test servers on loopback, never shipped).
# -mod=readonly: the committed go.sum is complete, and a build must never
# rewrite it.
source ../../scripts/go-toolchain.sh
export GOWORK=off GOFLAGS=-mod=readonly
mkdir -p "$dir"
# One build at a time per directory (two test runs at once): the second
# waits, then reuses what the first built.
exec 9>"$dir/.lock"
flock -n 9 || { printf "waiting for another scripts/kube-apiserver.sh to finish…\n" >&2; flock 9; }
# What an interrupted (killed) build left behind; the lock says none runs.
rm -rf "$dir"/.build-*

say() { printf '%s\n' "$*" >&2; }

# ok NAME VERSION: the binary runs and reports the version we build, so a
# binary of another version (or a damaged file) is rebuilt, not used.
ok() {
	local out
	[[ -x "$dir/$1" ]] && out=$("$dir/$1" --version 2>/dev/null) && grep -qE "(^| )v?${2#v}\b" <<<"$out"
}

build() { # name version package ldflags estimate
	local name=$1 version=$2 pkg=$3 ldflags=$4 estimate=$5
	if ok "$name" "$version"; then
		say "$name $version: reusing $dir/$name"
		return
	fi
	say "building $name $version ($estimate, once)…"
	local start=$SECONDS tmp
	# Into a temporary directory beside the target, then one rename: an
	# interrupted build never leaves a binary that looks complete, and two
	# concurrent runs each install a whole binary.
	tmp=$(mktemp -d "$dir/.build-$name.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	go build -o "$tmp/$name" -ldflags="$ldflags" "$pkg"
	mv -f "$tmp/$name" "$dir/$name"
	rm -rf "$tmp"
	trap - EXIT
	say "built $name in $((SECONDS - start)) s"
}

build etcd "$etcd_version" go.etcd.io/etcd/server/v3 "-s -w" "about a minute on 2 cores"
build kube-apiserver "$K8S_VERSION" k8s.io/kubernetes/cmd/kube-apiserver \
	"-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37" \
	"about 9 minutes on 2 cores and 2.5 GB of memory"
echo "$dir"
