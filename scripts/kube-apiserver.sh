#!/usr/bin/env bash
# Builds (once per version) the real kube-apiserver and etcd that the
# Kubernetes integration tests start, from the Go module proxy, into a cache
# outside the repository; later runs reuse them in a second. Prints the
# directory on the last line.
#
#   scripts/kube-apiserver.sh        # → ~/.cache/pave-tools/k8s/v1.37.2
set -euo pipefail
cd "$(dirname "$0")/../test/apiserver"
version=v1.37.2
dir="${PAVE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pave-tools}/k8s/$version"
export GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
mkdir -p "$dir"

build() { # name package ldflags
	local name=$1 pkg=$2 ldflags=$3
	if [[ -x "$dir/$name" ]]; then
		return
	fi
	echo "building $name $version from the Go module proxy (kube-apiserver: about 9 minutes on 2 cores, once)…" >&2
	local tmp
	rm -f "$dir/.$name."* # what an interrupted build left
	tmp=$(mktemp "$dir/.$name.XXXXXX")
	# Into a temporary name first: an interrupted build never leaves a
	# binary that looks complete.
	go build -o "$tmp" -ldflags="$ldflags" "$pkg"
	chmod +x "$tmp"
	mv -f "$tmp" "$dir/$name"
}

ver="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
build etcd go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "-s -w $ver"
echo "$dir"
