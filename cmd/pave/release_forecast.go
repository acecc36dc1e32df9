package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/stats"
)

// forecastWindow is how far back a new release's forecast looks at the
// service's traffic.
const forecastWindow = 5 * time.Minute

// metricsTraffic tells a service's recent live traffic from the metrics
// store: the gateways' request counters (pave_gateway_requests_total, by
// version, route and status class, in every embedded cluster), each
// series' increase over the span the store saw it in the last five
// minutes. Each series is measured over its own span rather than the
// whole window (PromQL's rate would spread a service that started two
// minutes ago over five).
type metricsTraffic struct{ db *tsdb.DB }

func (m metricsTraffic) Traffic(ctx context.Context, service string) (release.Traffic, error) {
	now := time.Now()
	q, err := m.db.Querier(now.Add(-forecastWindow).UnixMilli(), now.UnixMilli())
	if err != nil {
		return release.Traffic{}, fmt.Errorf("metrics store: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "pave_gateway_requests_total"),
		labels.MustNewMatcher(labels.MatchEqual, "service", service))
	t := release.Traffic{Routes: map[string]float64{}, Source: fmt.Sprintf("the metrics store, last %s", forecastWindow)}
	seen := false
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		l := s.Labels()
		if strings.HasPrefix(l.Get("version"), "cluster:") {
			continue // an edge's forwarding to a cluster, counted there too
		}
		var first, last int64
		var prev, inc float64
		n := 0
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			ts, v := it.At()
			if n == 0 {
				first = ts
			} else if v >= prev {
				inc += v - prev
			} else {
				inc += v // a restarted gateway counts from 0
			}
			prev, last = v, ts
			n++
		}
		if err := it.Err(); err != nil {
			return release.Traffic{}, fmt.Errorf("metrics store: %w", err)
		}
		if n < 2 || last <= first {
			continue
		}
		seen = true
		r := inc / (float64(last-first) / 1000)
		t.Rate += r
		t.Routes[l.Get("route")] += r
		if stats.IsErrorClass(l.Get("class")) {
			t.Errors += r
		}
	}
	if err := set.Err(); err != nil {
		return release.Traffic{}, fmt.Errorf("metrics store: %w", err)
	}
	if !seen {
		return release.Traffic{}, fmt.Errorf("the metrics store has not seen %s's traffic twice in the last %s", service, forecastWindow)
	}
	return t, nil
}

// forecastLine is the forecast in one line: the warning when a pause for
// a person is likely, else the expected time ("" without a forecast or
// once the release ended).
func forecastLine(s release.Status, st style) string {
	f := s.Forecast
	if f == nil || s.Phase.Terminal() {
		return ""
	}
	if f.PauseLikely {
		return st.yellow("warning") + ": " + f.Warning
	}
	return fmt.Sprintf("forecast: the judges should decide in about %s at %s requests/s (%s)", roughDuration(f.Expected.D()), forecastRate(f.Rate), f.Source)
}

func forecastRate(r float64) string {
	if r >= 10 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.2g", r)
}
