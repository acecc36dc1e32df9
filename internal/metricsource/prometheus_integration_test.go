package metricsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/kit"
)

// startPrometheus runs Debian's Prometheus on a free loopback port,
// scraping every second the targets given (job name → address, with the
// extra labels a ServiceMonitor would add). It returns its base URL.
func startPrometheus(t *testing.T, jobs map[string]struct {
	addr   string
	labels map[string]string
}) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("the prometheus binary is not installed: run scripts/deps.sh (it apt-get installs prometheus)")
	}
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n")
	for name, j := range jobs {
		fmt.Fprintf(&cfg, "- job_name: %s\n  static_configs:\n  - targets: [%q]\n", name, j.addr)
		if len(j.labels) > 0 {
			cfg.WriteString("    labels:\n")
			for k, v := range j.labels {
				fmt.Fprintf(&cfg, "      %s: %q\n", k, v)
			}
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out syncBuffer
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 30s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls the source until ok accepts a snapshot.
func waitFor(t *testing.T, src *Prometheus, service string, ok func(stats.Snapshot) bool) stats.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		snap, err := src.Snapshot(ctx, service)
		if err == nil && ok(snap) {
			return snap
		}
		if ctx.Err() != nil {
			t.Fatalf("Prometheus never gave the expected samples for %s: last %v %+v", service, err, snap)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPrometheusSnapshotFromARealPrometheus: a real Prometheus (Debian's)
// scrapes an exporter with Istio's standard metrics and two real kit
// services (v1, v2); the istio and kit presets give each version's
// requests, errors, routes and latency histogram, and two snapshots
// subtract to the window in between.
func TestPrometheusSnapshotFromARealPrometheus(t *testing.T) {
	// Istio's metrics, as a destination sidecar exports them.
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total"},
		[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version", "response_code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000}},
		[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version"})
	reg.MustRegister(reqs, dur)
	serve := func(v string, ok, failed int, ms float64) {
		reqs.WithLabelValues("destination", "shop", "default", v, "200").Add(float64(ok))
		reqs.WithLabelValues("destination", "shop", "default", v, "503").Add(float64(failed))
		for i := 0; i < ok+failed; i++ {
			dur.WithLabelValues("destination", "shop", "default", v).Observe(ms)
		}
	}
	serve("v1", 990, 10, 8)
	serve("v2", 95, 5, 80)
	// Another service, and the source's own report of the same requests,
	// must not leak in.
	reqs.WithLabelValues("destination", "cart", "default", "v1", "200").Add(1000)
	reqs.WithLabelValues("source", "shop", "default", "v1", "200").Add(1000)
	mesh := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer mesh.Close()

	// Two versions of a real kit service.
	apps := map[string]*kit.App{}
	jobs := map[string]struct {
		addr   string
		labels map[string]string
	}{"mesh": {addr: mesh.Listener.Addr().String()}}
	for _, v := range []string{"v1", "v2"} {
		a := kit.NewWithConfig(kit.Config{Service: "cart", Version: v, ExportDisabled: true, Output: io.Discard, SpoolDir: t.TempDir()})
		slow := v == "v2"
		a.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
			if slow {
				time.Sleep(30 * time.Millisecond)
			}
		})
		a.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
		defer a.Close(context.Background())
		apps[v] = a
		metrics := httptest.NewServer(promhttp.HandlerFor(a.Registry(), promhttp.HandlerOpts{}))
		defer metrics.Close()
		jobs["cart-"+v] = struct {
			addr   string
			labels map[string]string
		}{metrics.Listener.Addr().String(), map[string]string{"service": "cart", "namespace": "default"}}
	}
	call := func(v, method, path string, n int) {
		for i := 0; i < n; i++ {
			apps[v].Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
		}
	}
	call("v1", "GET", "/items", 18)
	call("v1", "POST", "/orders", 2)
	call("v2", "GET", "/items", 10)

	base := startPrometheus(t, jobs)

	istio, err := NewPrometheus(PrometheusOptions{URL: base, Preset: "istio", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	snap := waitFor(t, istio, "shop", func(s stats.Snapshot) bool {
		return s["v2"].Total.Requests == 100 && len(s["v1"].Total.Latency) > 0 && len(s["v2"].Total.Latency) > 0
	})
	if v := snap["v1"].Total; v.Requests != 1000 || v.Errors != 10 || v.ByClass["5xx"] != 10 || v.ByClass["2xx"] != 990 {
		t.Errorf("v1 %+v", v)
	}
	if v := snap["v2"].Total; v.Errors != 5 || v.ByClass["5xx"] != 5 {
		t.Errorf("v2 %+v", v)
	}
	// 8 ms falls in Istio's (5, 10] bucket, 80 ms in (50, 100]: each lands
	// whole in the stats bucket holding the upper bound.
	if n := snap["v1"].Total.Latency[stats.Bucket(10)]; n != 1000 {
		t.Errorf("v1 latency %v, want 1000 in bucket %d", nonzero(snap["v1"].Total.Latency), stats.Bucket(10))
	}
	if n := snap["v2"].Total.Latency[stats.Bucket(100)]; n != 100 {
		t.Errorf("v2 latency %v, want 100 in bucket %d", nonzero(snap["v2"].Total.Latency), stats.Bucket(100))
	}
	if p50 := snap["v2"].Total.Quantile(0.5); p50 < 50 || p50 > 100 {
		t.Errorf("v2 p50 %.1f ms, want within its bucket (50, 100]", p50)
	}
	if _, ok := snap["cart"]; ok || len(snap) != 2 {
		t.Errorf("another service leaked in: %v", snap)
	}

	// More traffic: the difference of two snapshots is what came between.
	serve("v2", 40, 10, 80)
	later := waitFor(t, istio, "shop", func(s stats.Snapshot) bool { return s["v2"].Total.Requests == 150 })
	if w := later["v2"].Sub(snap["v2"]).Total; w.Requests != 50 || w.Errors != 10 || w.Latency[stats.Bucket(100)] != 50 {
		t.Errorf("window %+v", w)
	}

	// kit's own RED metrics, by version and route, le in seconds.
	kitSrc, err := NewPrometheus(PrometheusOptions{URL: base, Preset: "kit", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	ks := waitFor(t, kitSrc, "cart", func(s stats.Snapshot) bool {
		return s["v1"].Total.Requests == 20 && s["v2"].Total.Requests == 10 && len(s["v2"].Total.Latency) > 0 && len(s["v1"].Total.Latency) > 0
	})
	v1 := ks["v1"]
	if v1.Total.Errors != 2 || v1.Total.ByClass["5xx"] != 2 || v1.Total.ByClass["2xx"] != 18 {
		t.Errorf("kit v1 %+v", v1.Total)
	}
	if r := v1.Routes["/orders"]; r.Requests != 2 || r.Errors != 2 {
		t.Errorf("kit v1 /orders %+v (routes %v)", r, v1.Routes)
	}
	if r := v1.Routes["/items"]; r.Requests != 18 || r.Errors != 0 || sum(r.Latency) != 18 {
		t.Errorf("kit v1 /items %+v", r)
	}
	// v2 sleeps 30 ms at least: kit's (25 ms, 50 ms] bucket or above.
	if h := ks["v2"].Total.Latency; sum(h) != 10 || sum(h[:stats.Bucket(50)]) != 0 {
		t.Errorf("kit v2 latency %v, want 10 at or above bucket %d", nonzero(h), stats.Bucket(50))
	}

	// A query Prometheus refuses names the URL and the query.
	bad, err := NewPrometheus(PrometheusOptions{URL: base, Queries: &Queries{Requests: "sum by (destination_version, response_code) (rate(x[", Latency: "sum by (destination_version, le) (y)"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Snapshot(context.Background(), "shop"); err == nil || !strings.Contains(err.Error(), base) || !strings.Contains(err.Error(), "rate(x[") || !strings.Contains(err.Error(), "bad_data") {
		t.Errorf("a bad query: %v", err)
	}
}

func sum(h []uint64) uint64 {
	var n uint64
	for _, v := range h {
		n += v
	}
	return n
}

// TestPrometheusWindowSurvivesAPodRestart: a real Prometheus scrapes a pod
// whose counters start from zero again (a restart) between two snapshots;
// the window is the requests served across the restart, not a reset.
func TestPrometheusWindowSurvivesAPodRestart(t *testing.T) {
	var mu sync.Mutex
	var current http.Handler
	newPod := func(ok, failed int) {
		reg := prometheus.NewRegistry()
		reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total"},
			[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version", "response_code", "request_operation"})
		dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Buckets: []float64{10, 100}},
			[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version"})
		reg.MustRegister(reqs, dur)
		reqs.WithLabelValues("destination", "shop", "default", "v2", "200", "POST /v1/pay").Add(float64(ok))
		reqs.WithLabelValues("destination", "shop", "default", "v2", "503", "POST /v1/pay").Add(float64(failed))
		for range ok + failed {
			dur.WithLabelValues("destination", "shop", "default", "v2").Observe(5)
		}
		mu.Lock()
		current = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		mu.Unlock()
	}
	newPod(100, 2)
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := current
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer pod.Close()
	base := startPrometheus(t, map[string]struct {
		addr   string
		labels map[string]string
	}{"mesh": {addr: pod.Listener.Addr().String()}})
	src, err := NewPrometheus(PrometheusOptions{URL: base, Preset: "istio", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	before := waitFor(t, src, "shop", func(s stats.Snapshot) bool { return s["v2"].Total.Requests == 102 })
	if r := before["v2"].Routes["POST /v1/pay"]; r.Requests != 102 || r.Errors != 2 {
		t.Fatalf("route from request_operation: %+v", before["v2"].Routes)
	}
	newPod(30, 1) // restarted: counters from zero, 31 requests since
	after := waitFor(t, src, "shop", func(s stats.Snapshot) bool { return s["v2"].Total.Requests != 102 })
	w := after["v2"].Sub(before["v2"]).Total
	if w.Requests != 31 || w.Errors != 1 || w.Latency[stats.Bucket(10)] != 31 {
		t.Fatalf("window across the restart %+v (before %+v, after %+v)", w, before["v2"].Total, after["v2"].Total)
	}
}

// TestIstioRoutesFromKitOnARealPrometheus: a real Prometheus scrapes a
// mesh whose Istio metrics carry no request_operation, and two versions of
// a real kit service of the same name; the istio preset's snapshot has
// Istio's totals and kit's routes, in one query.
func TestIstioRoutesFromKitOnARealPrometheus(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total"},
		[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version", "response_code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Buckets: []float64{10, 100}},
		[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version"})
	reg.MustRegister(reqs, dur)
	reqs.WithLabelValues("destination", "cart", "default", "v1", "200").Add(18)
	reqs.WithLabelValues("destination", "cart", "default", "v1", "503").Add(2)
	reqs.WithLabelValues("destination", "cart", "default", "v2", "200").Add(10)
	for range 20 {
		dur.WithLabelValues("destination", "cart", "default", "v1").Observe(5)
	}
	mesh := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer mesh.Close()
	jobs := map[string]struct {
		addr   string
		labels map[string]string
	}{"mesh": {addr: mesh.Listener.Addr().String()}}
	apps := map[string]*kit.App{}
	for _, v := range []string{"v1", "v2"} {
		a := kit.NewWithConfig(kit.Config{Service: "cart", Version: v, ExportDisabled: true, Output: io.Discard, SpoolDir: t.TempDir()})
		a.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {})
		a.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
		defer a.Close(context.Background())
		apps[v] = a
		metrics := httptest.NewServer(promhttp.HandlerFor(a.Registry(), promhttp.HandlerOpts{}))
		defer metrics.Close()
		jobs["cart-"+v] = struct {
			addr   string
			labels map[string]string
		}{metrics.Listener.Addr().String(), map[string]string{"service": "cart", "namespace": "default"}}
	}
	call := func(v, method, path string, n int) {
		for range n {
			apps[v].Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
		}
	}
	call("v1", "GET", "/items/7", 17)
	call("v1", "POST", "/orders", 2)
	call("v2", "GET", "/items/9", 10)
	base := startPrometheus(t, jobs)
	src, err := NewPrometheus(PrometheusOptions{URL: base, Preset: "istio", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	snap := waitFor(t, src, "cart", func(s stats.Snapshot) bool {
		return s["v1"].Total.Requests == 20 && s["v1"].Routes["/orders"].Requests == 2 && s["v2"].Routes["/items/{id}"].Requests == 10
	})
	v1 := snap["v1"]
	// The totals are the mesh's (it counted a request kit did not see).
	if v1.Total.Requests != 20 || v1.Total.Errors != 2 || sum(v1.Total.Latency) != 20 {
		t.Errorf("v1 total %+v, want Istio's", v1.Total)
	}
	if r := v1.Routes["/orders"]; r.Errors != 2 || r.ByClass["5xx"] != 2 {
		t.Errorf("v1 /orders from kit %+v", r)
	}
	if r := v1.Routes["/items/{id}"]; r.Requests != 17 || r.Errors != 0 || sum(r.Latency) != 17 {
		t.Errorf("v1 /items/{id} from kit %+v (routes %v)", r, v1.Routes)
	}
	if len(v1.Routes) != 2 {
		t.Errorf("v1 routes %v", v1.Routes)
	}
}
