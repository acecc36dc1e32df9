package e2e

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pave-platform/pave/internal/metrics"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/web"
)

// seedMetrics writes an hour of kit's RED series for service pay into the
// store, as scrapes every 15 s would have: v1 healthy and fast, v2 (a
// canary from 30 minutes ago) with 5% errors and slower.
func seedMetrics(t *testing.T, s *metrics.Store, now time.Time) {
	t.Helper()
	app := s.DB().Appender(context.Background())
	bounds := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "+Inf"}
	for _, v := range []struct {
		version  string
		from     time.Duration
		rps      float64
		errShare float64
		shares   []float64 // cumulative share of requests per bucket
	}{
		{"v1", time.Hour, 40, 0, []float64{0.3, 0.7, 0.95, 0.99, 1, 1}},
		{"v2", 30 * time.Minute, 4, 0.05, []float64{0.05, 0.3, 0.7, 0.9, 0.98, 1}},
	} {
		base := []string{"job", "services", "service", "pay", "version", v.version, "instance", "pay-" + v.version + "-0", "cluster", "local", "route", "/pay", "method", "GET"}
		ls := func(kv ...string) labels.Labels {
			return labels.FromStrings(append(append([]string{}, base...), kv...)...)
		}
		for at := now.Add(-v.from); !at.After(now); at = at.Add(15 * time.Second) {
			n := v.rps * at.Sub(now.Add(-v.from)).Seconds()
			ts := at.UnixMilli()
			for _, x := range []struct {
				l labels.Labels
				v float64
			}{
				{ls("__name__", "http_server_requests_total", "status_class", "2xx"), n * (1 - v.errShare)},
				{ls("__name__", "http_server_requests_total", "status_class", "5xx"), n * v.errShare},
			} {
				if _, err := app.Append(0, x.l, ts, x.v); err != nil {
					t.Fatal(err)
				}
			}
			for i, le := range bounds {
				if _, err := app.Append(0, ls("__name__", "http_server_request_duration_seconds_bucket", "status_class", "2xx", "le", le), ts, n*v.shares[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestServicePlotsInChromium: the services page draws, for each service,
// request rate, error ratio and p50/p99 per version over the last hour
// with uPlot, from the metrics store's PromQL API.
func TestServicePlotsInChromium(t *testing.T) {
	requireBrowser(t)
	if _, err := fs.Stat(web.Static, "static/lib/uplot/uPlot.esm.js"); err != nil {
		t.Fatal("uPlot is not embedded (web/static/lib/uplot): run `bash scripts/deps.sh` before building the tests")
	}
	store, err := metrics.Open(metrics.Options{Dir: t.TempDir(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	seedMetrics(t, store, time.Now())

	srv := server.New(server.Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	var routes []server.MetricsRoute
	for _, p := range metrics.APIPaths {
		routes = append(routes, server.MetricsRoute{Path: p.Path, Post: p.Post})
	}
	server.MetricsAPI{Handler: store.API(), Routes: routes}.Register(srv)
	// The table above the plots reads the runtime and the traffic API;
	// these stand-ins answer for the one service (the plots' data is the
	// store's, real).
	srv.HandleFunc("GET /api/v1/runtime", func(w http.ResponseWriter, _ *http.Request) {
		server.WriteJSON(w, 200, map[string]any{"deployments": []map[string]any{
			{"service": "pay", "version": "v1", "replicas": 1, "ready": 1}, {"service": "pay", "version": "v2", "replicas": 1, "ready": 1}}})
	})
	srv.HandleFunc("GET /api/v1/traffic/{service}", func(w http.ResponseWriter, _ *http.Request) {
		server.WriteJSON(w, 200, map[string]any{"percent": map[string]float64{"v1": 90, "v2": 10}})
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	artifacts := testproc.ArtifactsDir(t)
	if err := testproc.RunBrowserScript(context.Background(), t, testproc.BrowserScript{
		Dir: ".", Name: "metrics.mjs", Env: []string{"PAVE_URL=" + ts.URL, "PAVE_ARTIFACTS=" + artifacts},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(artifacts, "services-plots.png")); err != nil {
		t.Errorf("screenshot: %v", err)
	}
}
