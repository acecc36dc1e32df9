#!/bin/sh
# An experiment, not a configuration Pave ships: run bench/metrics with
# Prometheus' scrape package built WITHOUT the OpenTelemetry otelhttp
# transport it wraps around every scrape request (scrape.newScrapeClient
# adds it unconditionally; no option leaves it out). It measures how much
# of the ingest-CPU gap to Prometheus 2.42 that wrapper is.
#
# The module cache's prometheus module is copied to a temporary
# directory, newScrapeClient is patched to return the client unwrapped,
# and the harness is built against that copy through a temporary go.mod
# (-modfile) with a replace directive. The repository is not modified.
# Flags go to the harness, as with run.sh.
set -eu
cd "$(dirname "$0")/../.."
. scripts/go-toolchain.sh
[ -x /usr/bin/prometheus ] || { echo "installing prometheus (Debian)" >&2; apt-get install -y -qq prometheus >/dev/null; }
tmp=$(mktemp -d /tmp/pave-bench-nootel-XXXXXX)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
mod=$(GOWORK=off go list -m -f '{{.Dir}}' github.com/prometheus/prometheus)
cp -r "$mod" "$tmp/prometheus"
chmod -R u+w "$tmp/prometheus"
python3 - "$tmp/prometheus/scrape/scrape.go" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
old = """	client.Transport = otelhttp.NewTransport(
		client.Transport,
		otelhttp.WithClientTrace(func(ctx context.Context) *httptrace.ClientTrace {
			return otelhttptrace.NewClientTrace(ctx, otelhttptrace.WithoutSubSpans())
		}),
	)
	return client, nil"""
new = """	_, _, _ = otelhttp.NewTransport, otelhttptrace.NewClientTrace, httptrace.WithClientTrace // experiment: unwrapped
	return client, nil"""
if old not in s:
    sys.exit("without-otelhttp.sh: newScrapeClient changed upstream; update the patch")
open(p, "w").write(s.replace(old, new))
EOF
cp go.mod "$tmp/go.mod"
cp go.sum "$tmp/go.sum"
echo "replace github.com/prometheus/prometheus => $tmp/prometheus" >>"$tmp/go.mod"
GOWORK=off go build -modfile="$tmp/go.mod" -o /tmp/pave-bench-metrics-nootel ./bench/metrics
chmod -R u+w "$tmp"
rm -rf "$tmp"
trap - EXIT
exec taskset -c 0 /tmp/pave-bench-metrics-nootel "$@"
