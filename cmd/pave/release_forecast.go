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
// version, route and status class, in every embedded cluster) over the
// span each gateway has shown the service in the last five minutes, not
// the whole window (PromQL's rate would spread a service that started two
// minutes ago over five).
//
// A gateway exports a route's counter only once the route served a
// request, so a series that first appears after the gateway's other
// series of the service was at 0 before: its first value is traffic of
// the span too. Measured from its own first sample instead, a rare route
// (a POST every few seconds) counts nothing in a short span, and its
// requests vanish from the rate and from the routes a shadow step could
// not mirror (the forecast once counted such a service's POSTs as
// mirrorable).
type metricsTraffic struct{ db *tsdb.DB }

// counterSeries is one counter's samples in the window.
type counterSeries struct {
	labels      labels.Labels
	first, last int64   // timestamps of its first and last sample
	firstValue  float64 // its value at first
	inc         float64 // its increase after the first sample, resets counted from 0
}

func (m metricsTraffic) Traffic(ctx context.Context, service string) (release.Traffic, error) {
	now := time.Now()
	q, err := m.db.Querier(now.Add(-forecastWindow).UnixMilli(), now.UnixMilli())
	if err != nil {
		return release.Traffic{}, fmt.Errorf("metrics store: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "pave_gateway_requests_total"),
		labels.MustNewMatcher(labels.MatchEqual, "service", service))
	var series []counterSeries
	type span struct{ from, to int64 }
	spans := map[string]span{} // by the gateway that exported the series
	var it chunkenc.Iterator
	for set.Next() {
		s := counterSeries{labels: set.At().Labels()}
		if strings.HasPrefix(s.labels.Get("version"), "cluster:") {
			continue // an edge's forwarding to a cluster, counted there too
		}
		var prev float64
		n := 0
		it = set.At().Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			ts, v := it.At()
			switch {
			case n == 0:
				s.first, s.firstValue = ts, v
			case v >= prev:
				s.inc += v - prev
			default:
				s.inc += v // a restarted gateway counts from 0
			}
			prev, s.last = v, ts
			n++
		}
		if err := it.Err(); err != nil {
			return release.Traffic{}, fmt.Errorf("metrics store: %w", err)
		}
		if n == 0 {
			continue
		}
		series = append(series, s)
		g := gatewayOf(s.labels)
		if sp, ok := spans[g]; !ok {
			spans[g] = span{s.first, s.last}
		} else {
			spans[g] = span{min(sp.from, s.first), max(sp.to, s.last)}
		}
	}
	if err := set.Err(); err != nil {
		return release.Traffic{}, fmt.Errorf("metrics store: %w", err)
	}
	t := release.Traffic{Routes: map[string]float64{}, Source: fmt.Sprintf("the metrics store, last %s", forecastWindow)}
	seen := false
	for _, s := range series {
		sp := spans[gatewayOf(s.labels)]
		if sp.to <= sp.from {
			continue // one scrape: no span to tell a rate over
		}
		seen = true
		inc := s.inc
		if s.first > sp.from {
			inc += s.firstValue // born after the gateway's first scrape: it was 0
		}
		r := inc / (float64(sp.to-sp.from) / 1000)
		t.Rate += r
		t.Routes[s.labels.Get("route")] += r
		if stats.IsErrorClass(s.labels.Get("class")) {
			t.Errors += r
		}
	}
	if !seen {
		return release.Traffic{}, fmt.Errorf("the metrics store has not seen %s's traffic twice in the last %s", service, forecastWindow)
	}
	return t, nil
}

// gatewayOf names the gateway a series came from: its cluster and
// scrape target.
func gatewayOf(l labels.Labels) string { return l.Get("cluster") + "\x00" + l.Get("instance") }

// forecastLine is the forecast in one line: the warning when a pause for
// a person is likely, else the expected time ("" without a forecast or
// once the release ended).
func forecastLine(s release.Status, st style) string {
	f := s.Forecast
	if f == nil || s.Phase.Terminal() {
		return ""
	}
	added := ""
	if f.ShadowAdded != "" {
		added = "low traffic: " + f.ShadowAdded + "\n"
	}
	if f.PauseLikely {
		return added + st.yellow("warning") + ": " + f.Warning
	}
	return added + fmt.Sprintf("forecast: the judges should decide in about %s at %s requests/s (%s)", roughDuration(f.Expected.D()), forecastRate(f.Rate), f.Source)
}

func forecastRate(r float64) string {
	if r >= 10 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.2g", r)
}
