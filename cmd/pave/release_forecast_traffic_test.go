package main

import (
	"context"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
)

// TestMetricsTrafficMeasuresEachSeriesOverItsSpan: the forecast's traffic
// from a real TSDB: each series' increase over the span it was seen
// (a counter reset counts from 0), the error classes apart, routes
// summed over versions and clusters, an edge's cluster:NAME versions left
// out.
func TestMetricsTrafficMeasuresEachSeriesOverItsSpan(t *testing.T) {
	t.Parallel() // its own pave up, ports and directories; it mostly waits
	opts := tsdb.DefaultOptions()
	db, err := tsdb.Open(filepath.Join(t.TempDir(), "tsdb"), slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	app := db.Appender(context.Background())
	add := func(version, route, class, cluster string, from time.Duration, perSec float64, resetAt time.Duration) {
		l := labels.FromStrings("__name__", "pave_gateway_requests_total", "service", "pay", "version", version, "route", route, "class", class, "cluster", cluster)
		var v float64
		for at := from; at <= 0; at += 10 * time.Second {
			if resetAt != 0 && at == resetAt {
				v = 0
			}
			if _, err := app.Append(0, l, now.Add(at).UnixMilli(), v); err != nil {
				t.Fatal(err)
			}
			v += perSec * 10
		}
	}
	add("v1", "GET /a", "2xx", "local", -4*time.Minute, 8, 0)               // 8/s over 4 min
	add("v1", "GET /a", "2xx", "other", -2*time.Minute, 2, 0)               // another cluster, 2/s since 2 min ago
	add("v1", "POST /b", "5xx", "local", -4*time.Minute, 1, -2*time.Minute) // 1/s, restarted once
	add("cluster:other", "GET /a", "2xx", "local", -4*time.Minute, 50, 0)   // an edge's: left out
	l := labels.FromStrings("__name__", "pave_gateway_requests_total", "service", "other", "version", "v1", "route", "GET /a", "class", "2xx")
	if _, err := app.Append(0, l, now.UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	tr, err := metricsTraffic{db}.Traffic(context.Background(), "pay")
	if err != nil {
		t.Fatal(err)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 0.1 }
	if !near(tr.Rate, 11) || !near(tr.Errors, 1) || !near(tr.Routes["GET /a"], 10) || !near(tr.Routes["POST /b"], 1) || len(tr.Routes) != 2 {
		t.Errorf("traffic %+v; want 11/s, 1 error/s, GET /a 10/s, POST /b 1/s", tr)
	}
	// A service seen once only (or never) has no rate yet: no forecast.
	if _, err := (metricsTraffic{db}).Traffic(context.Background(), "other"); err == nil || !strings.Contains(err.Error(), "has not seen other's traffic twice") {
		t.Errorf("a single sample: %v", err)
	}
}

// TestMetricsTrafficCountsARareRouteBornInTheWindow: a service that has
// just started taking traffic, scraped every second: 1.8 GET/s since 10 s
// ago, and a POST every 5 s whose counter the gateway exported only at
// the first POST (value 1, 4 s ago; none since). The POST's first value is
// traffic of the span (it was 0 before), so the rate holds it and a shadow
// step's mirrorable share leaves it out; measured from the POST series'
// own first sample it counted nothing, and the forecast took every
// request for mirrorable.
func TestMetricsTrafficCountsARareRouteBornInTheWindow(t *testing.T) {
	t.Parallel()
	db, err := tsdb.Open(filepath.Join(t.TempDir(), "tsdb"), slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	app := db.Appender(context.Background())
	get := labels.FromStrings("__name__", "pave_gateway_requests_total", "service", "quiet", "version", "v1", "route", "GET /v1/hello/{name}",
		"class", "2xx", "cluster", "local", "instance", "gateway-local")
	post := labels.FromStrings("__name__", "pave_gateway_requests_total", "service", "quiet", "version", "v1", "route", "POST /v1/pay",
		"class", "2xx", "cluster", "local", "instance", "gateway-local")
	for s := -10; s <= 0; s++ {
		at := now.Add(time.Duration(s) * time.Second).UnixMilli()
		if _, err := app.Append(0, get, at, 1.8*float64(s+11)); err != nil {
			t.Fatal(err)
		}
		if s >= -4 {
			if _, err := app.Append(0, post, at, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	tr, err := metricsTraffic{db}.Traffic(context.Background(), "quiet")
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Routes["POST /v1/pay"]; math.Abs(got-0.1) > 0.01 {
		t.Errorf("POST /v1/pay at %.3f/s, want 0.1 (1 request over the 10 s the gateway showed the service)", got)
	}
	if math.Abs(tr.Rate-1.9) > 0.01 {
		t.Errorf("rate %.3f/s, want 1.9", tr.Rate)
	}
	if got := tr.Routes["GET /v1/hello/{name}"]; math.Abs(got-1.8) > 0.01 {
		t.Errorf("GET at %.3f/s, want 1.8: what a shadow step would mirror", got)
	}
}
