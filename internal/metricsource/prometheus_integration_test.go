package metricsource

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pave-platform/pave/internal/stats"
)

// TestPrometheusSnapshotFromARealPrometheus: a real Prometheus (Debian's)
// scrapes an exporter with Istio's standard metrics; the source's
// snapshot has each version's requests, errors and latency histogram.
func TestPrometheusSnapshotFromARealPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: run scripts/deps.sh (apt-get install prometheus)")
	}
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total"},
		[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version", "response_code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000}},
		[]string{"reporter", "destination_service_name", "destination_service_namespace", "destination_version"})
	reg.MustRegister(reqs, dur)
	for v, n := range map[string][2]int{"v1": {990, 10}, "v2": {95, 5}} {
		reqs.WithLabelValues("destination", "shop", "default", v, "200").Add(float64(n[0]))
		reqs.WithLabelValues("destination", "shop", "default", v, "503").Add(float64(n[1]))
		for i := 0; i < n[0]+n[1]; i++ {
			ms := 8.0
			if v == "v2" {
				ms = 80
			}
			dur.WithLabelValues("destination", "shop", "default", v).Observe(ms)
		}
	}
	// Another service's series must not leak in.
	reqs.WithLabelValues("destination", "cart", "default", "v1", "200").Add(1000)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer exporter.Close()

	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: mesh\n  static_configs:\n  - targets: [%q]\n", exporter.Listener.Addr().String())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	src, err := NewPrometheus(PrometheusOptions{URL: "http://" + addr, Preset: "istio", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var snap stats.Snapshot
	for {
		snap, err = src.Snapshot(ctx, "shop")
		if err == nil && snap["v2"].Total.Requests == 100 && len(snap["v1"].Total.Latency) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no samples from Prometheus: %v %+v", err, snap)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := snap["v1"].Total; v.Requests != 1000 || v.Errors != 10 || v.ByClass["5xx"] != 10 || v.ByClass["2xx"] != 990 {
		t.Errorf("v1 %+v", v)
	}
	if v := snap["v2"].Total; v.Errors != 5 {
		t.Errorf("v2 %+v", v)
	}
	if p50 := snap["v2"].Total.Quantile(0.5); p50 < 50 || p50 > 100 {
		t.Errorf("v2 p50 %.1f ms, want within its bucket (50, 100]", p50)
	}
	if p50 := snap["v1"].Total.Quantile(0.5); p50 < 5 || p50 > 10 {
		t.Errorf("v1 p50 %.1f ms, want within (5, 10]", p50)
	}
	if _, ok := snap["cart"]; ok {
		t.Error("another service leaked in")
	}
	// A query Prometheus refuses names the URL and the query.
	bad, _ := NewPrometheus(PrometheusOptions{URL: "http://" + addr, Queries: &Queries{Requests: "sum by (version) (rate(x[", Latency: "sum by (version, le) (y)", VersionLabel: "version"}})
	if _, err := bad.Snapshot(ctx, "shop"); err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "rate(x[") {
		t.Errorf("a bad query: %v", err)
	}
}
