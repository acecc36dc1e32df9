package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/alert/slo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func fastProbe(path string) slo.Probe {
	return slo.Probe{Method: http.MethodGet, Path: path, ExpectStatus: http.StatusOK,
		Interval: slo.Duration(20 * time.Millisecond), Timeout: slo.Duration(200 * time.Millisecond)}
}

// waitGauge waits until the gauge of (service, cluster, route) is want.
func waitGauge(t *testing.T, g *prometheus.GaugeVec, want float64, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := testutil.ToFloat64(g.WithLabelValues(labels...))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v = %v; want %v within 5s", labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runProber(t *testing.T) (*Prober, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return p, reg
}

// A real server answering, then going down: the gauge follows, and the
// request carries the Host the gateway routes the service by.
func TestProbeFollowsAServerGoingDown(t *testing.T) {
	var hosts atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host)
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	p, reg := runProber(t)
	check := Check{Service: "orders", Cluster: "dc1", URL: srv.URL, Host: "orders.example.com", Probe: fastProbe("/healthz")}
	if err := p.Set("orders", []Check{check}); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, p.success, 1, "orders", "dc1", "GET /healthz")
	if h, _ := hosts.Load().(string); h != "orders.example.com" {
		t.Errorf("Host = %q; want orders.example.com", h)
	}
	if d := testutil.ToFloat64(p.duration.WithLabelValues("orders", "dc1", "GET /healthz")); d <= 0 || d > 1 {
		t.Errorf("pave_probe_duration_seconds = %v; want a positive duration under 1s", d)
	}
	srv.Close()
	waitGauge(t, p.success, 0, "orders", "dc1", "GET /healthz")

	// The series Prometheus scrapes carry the labels the rules select on.
	n, err := testutil.GatherAndCount(reg, "pave_probe_success", "pave_probe_duration_seconds")
	if err != nil || n != 2 {
		t.Errorf("gathered %d series (%v); want 2", n, err)
	}
	// Removing the service's checks removes its series.
	if err := p.Set("orders", nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "pave_probe_success"); n != 0 {
		t.Errorf("%d pave_probe_success series after the checks were removed; want 0", n)
	}
}

func TestProbeFailsOnWrongStatusAndTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/broken":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		}
	}))
	defer srv.Close()
	p, _ := runProber(t)
	moved := fastProbe("/moved")
	moved.ExpectStatus = http.StatusFound
	checks := []Check{
		{Service: "orders", Cluster: "dc1", URL: srv.URL, Probe: fastProbe("/broken")},
		{Service: "orders", Cluster: "dc1", URL: srv.URL, Probe: fastProbe("/slow")},
		{Service: "orders", Cluster: "dc1", URL: srv.URL, Probe: moved},
	}
	// Start from a set gauge so 0 is the probe's verdict, not the default.
	for _, r := range []string{"GET /broken", "GET /slow"} {
		p.success.WithLabelValues("orders", "dc1", r).Set(1)
	}
	if err := p.Set("orders", checks); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, p.success, 0, "orders", "dc1", "GET /broken")
	waitGauge(t, p.success, 0, "orders", "dc1", "GET /slow")
	// A redirect is not followed: the probe expecting 302 sees it.
	waitGauge(t, p.success, 1, "orders", "dc1", "GET /moved")
	if d := testutil.ToFloat64(p.duration.WithLabelValues("orders", "dc1", "GET /slow")); d < 0.15 || d > 1.5 {
		t.Errorf("timed-out probe took %vs; want about its 0.2s timeout", d)
	}
}

func TestChecksExpandOverClusters(t *testing.T) {
	svc, err := slo.Parse("orders", []byte("probes: [{path: /healthz}, {path: /ready, clusters: [dc2]}]"))
	if err != nil {
		t.Fatal(err)
	}
	checks := Checks(svc, []Gateway{{Cluster: "dc1", URL: "http://127.0.0.1:1"}, {Cluster: "dc2", URL: "http://127.0.0.1:2"}})
	var got []string
	for _, c := range checks {
		got = append(got, c.Cluster+" "+c.Probe.Route())
	}
	if strings.Join(got, ",") != "dc1 GET /healthz,dc2 GET /healthz,dc2 GET /ready" {
		t.Errorf("checks = %v", got)
	}
}

func TestSetRefusesBadChecks(t *testing.T) {
	p, err := New(prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		check Check
		want  string
	}{
		{Check{Service: "billing", URL: "http://x", Probe: fastProbe("/h")}, `is of service "billing"`},
		{Check{Service: "orders", URL: "127.0.0.1:80", Probe: fastProbe("/h")}, "is not an http(s) URL"},
		{Check{Service: "orders", URL: "http://x", Probe: slo.Probe{Path: "/h"}}, "lacks its defaults"},
	} {
		if err := p.Set("orders", []Check{c.check}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v; want %q", c.check, err, c.want)
		}
	}
}
