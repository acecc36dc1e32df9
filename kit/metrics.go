package kit

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// redMetrics holds the RED series. Children are cached per (route, method,
// status class) so the hot path is one map read under a read lock, with no
// label-slice allocation.
type redMetrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dropped  droppedFields

	mu       sync.RWMutex
	children map[seriesKey]*series
}

type seriesKey struct {
	route, method string
	class         uint8
}

type series struct {
	requests prometheus.Counter
	errors   prometheus.Counter // nil unless the class is 5xx
	duration prometheus.Observer
}

// droppedFields counts request fields kit refused to carry into logs,
// spans or context because they were malformed or oversized.
type droppedFields struct {
	traceparent, tracestate, baggage, caller, merchant prometheus.Counter
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func newREDMetrics(reg prometheus.Registerer, version string) *redMetrics {
	constLabels := prometheus.Labels{"version": version}
	labels := []string{"route", "method", "status_class"}
	m := &redMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_server_requests_total", Help: "HTTP requests served, by route template, method and status class.",
			ConstLabels: constLabels,
		}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_server_errors_total", Help: "HTTP requests answered with a 5xx status.",
			ConstLabels: constLabels,
		}, []string{"route", "method"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_server_request_duration_seconds", Help: "Time from the request reaching kit to the handler returning.",
			ConstLabels: constLabels,
			Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, labels),
		children: map[seriesKey]*series{},
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kit_dropped_fields_total",
		Help: "Request fields dropped because they were malformed or oversized; the request was still served.",
	}, []string{"field"})
	m.dropped = droppedFields{
		traceparent: dropped.WithLabelValues("traceparent"),
		tracestate:  dropped.WithLabelValues("tracestate"),
		baggage:     dropped.WithLabelValues("baggage"),
		caller:      dropped.WithLabelValues("caller"),
		merchant:    dropped.WithLabelValues("merchant_id"),
	}
	reg.MustRegister(m.requests, m.errors, m.duration, dropped)
	return m
}

func statusClass(code int) uint8 {
	if code >= 100 && code < 600 {
		return uint8(code/100 - 1)
	}
	return 5
}

func (m *redMetrics) observe(route, method string, status int, d time.Duration) {
	key := seriesKey{route: route, method: method, class: statusClass(status)}
	m.mu.RLock()
	s := m.children[key]
	m.mu.RUnlock()
	if s == nil {
		s = m.child(key)
	}
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
	if s.errors != nil {
		s.errors.Inc()
	}
}

func (m *redMetrics) child(key seriesKey) *series {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.children[key]; s != nil {
		return s
	}
	class := statusClasses[key.class]
	s := &series{
		requests: m.requests.WithLabelValues(key.route, key.method, class),
		duration: m.duration.WithLabelValues(key.route, key.method, class),
	}
	if class == "5xx" {
		s.errors = m.errors.WithLabelValues(key.route, key.method)
	}
	m.children[key] = s
	return s
}
