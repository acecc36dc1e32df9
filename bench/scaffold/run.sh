#!/usr/bin/env bash
# Figures for the golden path, with one command: bash bench/scaffold/run.sh
#
#  1. `pave new` wall time (rendering, writing ~30 files, go.sum offline),
#     against the floor of copying the same tree with `cp -r`.
#  2. time from `pave new` to the new service answering GET /readyz with 200
#     (pave new + go build + start), against the same path for a bare
#     net/http hello-world module (write 2 files + go build + start).
#
# Passes are interleaved (A B A B ...), PASSES each (default 5); medians and the
# median of the per-pass ratios (with min and max) are printed last. Offline:
# GOPROXY=off, the module cache must be warm (cd kit && go mod download).
set -euo pipefail
PASSES=${PASSES:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/pave-bench-scaffold.XXXXXX)
trap 'rm -rf "$work"' EXIT
source "$repo/scripts/go-toolchain.sh" # GOTOOLCHAIN: the Go of go.mod (in the module cache, so GOPROXY=off is fine)
export GOWORK=off GOFLAGS=-mod=mod GOPROXY=off

(cd "$repo" && GOWORK= GOFLAGS= go build -o "$work/pave" ./cmd/pave)
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # url, pid
  for _ in $(seq 1 2000); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "service exited" >&2; return 1; }
    sleep 0.005
  done
  echo "not ready: $1" >&2; return 1
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio_stats() { # file of ratios -> "median (min .. max)"
  local m; m=$(median < "$1")
  echo "$m ($(sort -n "$1" | head -1) .. $(sort -n "$1" | tail -1))"
}

# A tree to copy for the cp floor.
"$work/pave" new orders --dir "$work/template-tree" --kit-replace "$repo/kit" >/dev/null

: > "$work/new.ms"; : > "$work/cp.ms"; : > "$work/new.ratio"; : > "$work/notidy.ms"
: > "$work/serve.ms"; : > "$work/bare.ms"; : > "$work/serve.ratio"
for i in $(seq 1 "$PASSES"); do
  t0=$(now); "$work/pave" new orders --dir "$work/new-$i" --kit-replace "$repo/kit" >/dev/null; t1=$(now)
  a=$(ms "$t0" "$t1"); echo "$a" >> "$work/new.ms"
  t0=$(now); "$work/pave" new orders --dir "$work/notidy-$i" --kit-replace "$repo/kit" --no-tidy >/dev/null; t1=$(now)
  ms "$t0" "$t1" >> "$work/notidy.ms"
  t0=$(now); cp -r "$work/template-tree" "$work/cp-$i"; t1=$(now)
  b=$(( $(ms "$t0" "$t1") > 0 ? $(ms "$t0" "$t1") : 1 )); echo "$b" >> "$work/cp.ms"
  awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f\n", a/b}' >> "$work/new.ratio"

  # pave new -> service answering.
  port=$(free_port)
  t0=$(now)
  "$work/pave" new orders --dir "$work/svc-$i" --kit-replace "$repo/kit" >/dev/null
  (cd "$work/svc-$i" && go build -o orders .)
  PORT=$port "$work/svc-$i/orders" >/dev/null 2>&1 & pid=$!
  wait_ready "http://127.0.0.1:$port/readyz" "$pid"; t1=$(now)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  a=$(ms "$t0" "$t1"); echo "$a" >> "$work/serve.ms"

  # Peer: a bare net/http module, written and built the same way.
  port=$(free_port)
  t0=$(now)
  mkdir -p "$work/bare-$i"
  printf 'module example.com/bare\n\ngo %s\n' "$PAVE_GO_VERSION" > "$work/bare-$i/go.mod"
  cat > "$work/bare-$i/main.go" <<'GO'
package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {})
	_ = http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
GO
  (cd "$work/bare-$i" && go build -o bare .)
  PORT=$port "$work/bare-$i/bare" & pid=$!
  wait_ready "http://127.0.0.1:$port/readyz" "$pid"; t1=$(now)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  b=$(ms "$t0" "$t1"); echo "$b" >> "$work/bare.ms"
  awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f\n", a/b}' >> "$work/serve.ratio"
done

echo "passes: $PASSES each, interleaved"
echo "pave new --no-tidy (render + write only): median $(median < "$work/notidy.ms") ms"
echo "pave new (render + write + go.sum offline): median $(median < "$work/new.ms") ms; peer cp -r of the same tree: median $(median < "$work/cp.ms") ms; ratio $(ratio_stats "$work/new.ratio")"
echo "pave new -> /readyz 200 (new + go build + start): median $(median < "$work/serve.ms") ms; peer bare net/http (write + go build + start): median $(median < "$work/bare.ms") ms; ratio $(ratio_stats "$work/serve.ratio")"
