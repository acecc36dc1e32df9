package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// kitLikeTarget serves a real client_golang registry with the RED series
// a kit service exposes (version as a constant label), so the scrape path
// is Prometheus' own scraper parsing client_golang's own exposition.
type kitLikeTarget struct {
	srv      *httptest.Server
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newKitLikeTarget(t *testing.T, version string) *kitLikeTarget {
	t.Helper()
	reg := prometheus.NewRegistry()
	k := &kitLikeTarget{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_server_requests_total", Help: "HTTP requests served.",
			ConstLabels: prometheus.Labels{"version": version}}, []string{"route", "method", "status_class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_server_request_duration_seconds", Help: "Latency.",
			ConstLabels: prometheus.Labels{"version": version}, Buckets: []float64{.01, .1, 1}}, []string{"route", "method", "status_class"}),
	}
	reg.MustRegister(k.requests, k.latency)
	k.requests.WithLabelValues("/pay", "GET", "2xx").Add(10)
	k.requests.WithLabelValues("/pay", "GET", "5xx").Add(1)
	k.latency.WithLabelValues("/pay", "GET", "2xx").Observe(0.05)
	k.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(k.srv.Close)
	return k
}

func (k *kitLikeTarget) addr() string { return strings.TrimPrefix(k.srv.URL, "http://") }

// openStore opens a store in a temp dir, runs its scraper and serves its
// API; everything stops when the test ends.
func openStore(t *testing.T, o Options) (*Store, *httptest.Server) {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = time.Second
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	api := httptest.NewServer(s.API())
	t.Cleanup(func() {
		api.Close()
		cancel()
		<-done
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, api
}

// apiAnswer is the Prometheus API envelope, decoded loosely.
type apiAnswer struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

func getAPI(t *testing.T, base, path string, q url.Values) (int, apiAnswer) {
	t.Helper()
	resp, err := http.Get(base + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a apiAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%s: not the API's JSON (%v): %s", path, err, b)
	}
	return resp.StatusCode, a
}

// eventually polls cond every 200ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last: %s", what, d, last)
}

// instantValue runs an instant query through the HTTP API and returns the
// vector's length and the first sample's value.
func instantValue(t *testing.T, base, expr string) (int, string) {
	t.Helper()
	code, a := getAPI(t, base, "/api/v1/query", url.Values{"query": {expr}})
	if code != 200 {
		t.Fatalf("query %s: %d %s %s", expr, code, a.ErrorType, a.Error)
	}
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(a.Data, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Result) == 0 {
		return 0, ""
	}
	return len(d.Result), fmt.Sprint(d.Result[0].Value[1])
}

// tool finds a Debian tool, failing (never skipping) when it is missing.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's prometheus package (bash scripts/deps.sh installs it)", name)
	}
	return p
}
