package buildcache

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// serverMetrics are what /metrics exposes: hits and misses per namespace,
// bytes each way, evictions, refused writes and request latency.
type serverMetrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.HistogramVec // method, kind, code
	hits      *prometheus.CounterVec   // kind
	misses    *prometheus.CounterVec   // kind
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	evictions *prometheus.CounterVec // kind
	evicted   prometheus.Counter
	refused   *prometheus.CounterVec // reason
	size      prometheus.GaugeFunc
}

func newServerMetrics(size func() float64) *serverMetrics {
	m := &serverMetrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pave_buildcache_request_duration_seconds",
			Help:    "Time to answer a cache request, by method, namespace (ac, cas, go) and status code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"method", "kind", "code"}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pave_buildcache_hits_total", Help: "Reads answered from the cache, by namespace.",
		}, []string{"kind"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pave_buildcache_misses_total", Help: "Reads of keys the cache does not hold, by namespace.",
		}, []string{"kind"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pave_buildcache_received_bytes_total", Help: "Bytes of entries stored.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pave_buildcache_sent_bytes_total", Help: "Bytes of entries served.",
		}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pave_buildcache_evictions_total", Help: "Entries removed to stay under cache-max-size or to make room on a full disk.",
		}, []string{"kind"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pave_buildcache_evicted_bytes_total", Help: "Bytes of entries removed by the size bound.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pave_buildcache_refused_writes_total", Help: "Writes refused, by reason (hash, size, too_large, no_space, forbidden).",
		}, []string{"reason"}),
		size: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pave_buildcache_disk_bytes", Help: "Bytes held by the local disk tier.",
		}, size),
	}
	m.reg.MustRegister(m.requests, m.hits, m.misses, m.bytesIn, m.bytesOut, m.evictions, m.evicted, m.refused, m.size,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
