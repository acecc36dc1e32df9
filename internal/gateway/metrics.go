package gateway

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pave-platform/pave/internal/stats"
)

var (
	descRequests = prometheus.NewDesc("pave_gateway_requests_total",
		"Requests proxied by the gateway, by service, version (or cluster:NAME at the edge), route and status class.",
		[]string{"service", "version", "route", "class"}, nil)
	descDuration = prometheus.NewDesc("pave_gateway_request_duration_seconds",
		"Time from receiving a request to having its answer, by service and version.",
		[]string{"service", "version"}, nil)
	descUnjudged = prometheus.NewDesc("pave_gateway_unjudged_requests_total",
		"Requests whose version the client chose (pinned, sticky), counted apart from the judged split, by service, version, reason and status class.",
		[]string{"service", "version", "reason", "class"}, nil)
	descDropped = prometheus.NewDesc("pave_gateway_access_log_dropped_total",
		"Access records dropped because the access logger fell behind.", nil, nil)
)

// Collector exports the live statistics as Prometheus metrics, read from
// the same atomic counters at scrape time. Register it on the control
// plane's registry: reg.MustRegister(gw.Collector()).
func (g *Gateway) Collector() prometheus.Collector { return collector{g} }

// MetricsHandler serves the gateway's metrics alone in the Prometheus
// text format, for a control plane without a registry of its own.
func (g *Gateway) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.Collector())
	if c, ok := g.opts.AccessLog.(prometheus.Collector); ok { // e.g. its disk spool's counters
		reg.MustRegister(c)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

type collector struct{ g *Gateway }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRequests
	ch <- descDuration
	ch <- descUnjudged
	ch <- descDropped
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.g.statsMu.Lock()
	services := make([]string, 0, len(c.g.stats))
	for s := range c.g.stats {
		services = append(services, s)
	}
	c.g.statsMu.Unlock()
	sort.Strings(services)
	for _, svc := range services {
		for version, v := range c.g.Snapshot(svc) {
			for route, counts := range v.Routes {
				for class, n := range counts.ByClass {
					ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), svc, version, route, class)
				}
			}
			for reason, counts := range v.Unjudged {
				for class, n := range counts.ByClass {
					ch <- prometheus.MustNewConstMetric(descUnjudged, prometheus.CounterValue, float64(n), svc, version, reason, class)
				}
			}
			buckets := make(map[float64]uint64, len(stats.LatencyBounds))
			var cum uint64
			for i, bound := range stats.LatencyBounds {
				cum += v.Total.Latency[i]
				buckets[bound/1000] = cum
			}
			// The sum is estimated from bucket midpoints: the counters keep
			// no exact sum, to stay lock-free on the hot path.
			var sum float64
			for i, n := range v.Total.Latency {
				lo, hi := 0.0, stats.LatencyBounds[len(stats.LatencyBounds)-1]
				if i > 0 {
					lo = stats.LatencyBounds[i-1]
				}
				if i < len(stats.LatencyBounds) {
					hi = stats.LatencyBounds[i]
				}
				sum += float64(n) * (lo + hi) / 2 / 1000
			}
			ch <- prometheus.MustNewConstHistogram(descDuration, v.Total.Requests, sum, buckets, svc, version)
		}
	}
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(c.g.accessDropped.Load()))
}
