#!/usr/bin/env bash
# Per-request cost of the kit middleware stack against a bare net/http
# handler, in one run, interleaved. The benchmark runs on one core with
# GOMAXPROCS=1 and the OTLP sink (the export receiver) on the other, both on
# loopback; every loop is bounded (PASSES x N requests).
#
#   bench/kit/run.sh                 # 5 passes of 200000 requests
#   PASSES=7 N=500000 bench/kit/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/go-toolchain.sh # GOTOOLCHAIN: the Go of go.mod

PASSES="${PASSES:-5}"
N="${N:-200000}"
PORT="${PORT:-43181}"
BIN="$(mktemp -d)"
trap 'kill "${SINK_PID:-}" 2>/dev/null || true; rm -rf "$BIN"' EXIT

go build -o "$BIN/kitbench" ./bench/kit

PIN_SINK=() PIN_BENCH=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SINK=(taskset -c 0) PIN_BENCH=(taskset -c 1)
fi

GOMAXPROCS=1 "${PIN_SINK[@]}" "$BIN/kitbench" -sink "127.0.0.1:$PORT" &
SINK_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done

GOMAXPROCS=1 "${PIN_BENCH[@]}" "$BIN/kitbench" -passes "$PASSES" -n "$N" -endpoint "http://127.0.0.1:$PORT"

# Part 2: the same route served over loopback HTTP, bare net/http against
# kit, driven by wrk with keep-alive; server CPU per request is read from
# /proc/PID/stat (utime+stime, all threads). Skipped only with WRK_PASSES=0.
WRK_PASSES="${WRK_PASSES:-5}"
DURATION="${DURATION:-5s}"
if [ "$WRK_PASSES" -gt 0 ]; then
  if ! command -v wrk >/dev/null; then
    echo "wrk is not installed: apt-get install wrk (scripts/ installs it), or run with WRK_PASSES=0" >&2
    exit 1
  fi
  SPORT=$((PORT + 1))
  TICK=$(getconf CLK_TCK)
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  PIN_WRK=() PIN_SRV=()
  if [ ${#PIN_SINK[@]} -gt 0 ]; then PIN_WRK=(taskset -c 0) PIN_SRV=(taskset -c 1); fi
  declare -A CPU REQS
  one_pass() { # stack pass
    GOMAXPROCS=1 "${PIN_SRV[@]}" "$BIN/kitbench" -serve "127.0.0.1:$SPORT" -stack "$1" -endpoint "http://127.0.0.1:$PORT" &
    local pid=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$SPORT/v1/orders/1" >/dev/null 2>&1 && break; sleep 0.05; done
    "${PIN_WRK[@]}" wrk -t1 -c16 -d1s "http://127.0.0.1:$SPORT/v1/orders/42" >/dev/null # warm-up
    local c0 c1 out n
    c0=$(cpu_ticks "$pid")
    out=$("${PIN_WRK[@]}" wrk -t1 -c16 -d"$DURATION" \
      -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
      -H 'baggage: caller.service=checkout' -H 'X-Merchant-Id: m-42' \
      "http://127.0.0.1:$SPORT/v1/orders/42")
    c1=$(cpu_ticks "$pid")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    CPU[$1,$2]=$(( (c1 - c0) * 1000000 / TICK ))   # µs
    REQS[$1,$2]=$n
    awk -v s="$1" -v p="$2" -v n="$n" -v us="${CPU[$1,$2]}" -v d="$DURATION" \
      'BEGIN { printf "%-5d %-5s %10d req %9.0f req/s %8.2f CPU µs/req\n", p, s, n, n/(d+0), us/n }'
  }
  echo
  echo "wrk over loopback: $WRK_PASSES interleaved passes of $DURATION, server GOMAXPROCS=1"
  for p in $(seq "$WRK_PASSES"); do one_pass bare "$p"; one_pass kit "$p"; done
  for p in $(seq "$WRK_PASSES"); do
    echo "${CPU[bare,$p]} ${REQS[bare,$p]} ${CPU[kit,$p]} ${REQS[kit,$p]}"
  done | awk '
    { b = $1 / $2; k = $3 / $4; r[NR] = k / b; a[NR] = k - b; bb[NR] = b; kk[NR] = k }
    function med(x, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
      return (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }
    END { n = NR
      printf "bare net/http server (peer): %.2f CPU µs/req (median)\n", med(bb, n)
      printf "kit server:                  %.2f CPU µs/req (median)\n", med(kk, n)
      printf "kit added per request: %.2f CPU µs (median)\n", med(a, n)
      mn = r[1]; mx = r[1]; for (i = 1; i <= n; i++) { if (r[i] < mn) mn = r[i]; if (r[i] > mx) mx = r[i] }
      printf "ratio kit/bare server CPU per request: %.2fx (min %.2fx, max %.2fx)\n", med(r, n), mn, mx }'
fi
