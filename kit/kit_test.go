package kit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/kit"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// syncBuffer is the App's Output in tests; the flusher writes from its own
// goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// accessKeys is the access-log schema of issue 2, exactly.
var accessKeys = []string{"time", "trace_id", "span_id", "service", "version", "method", "route", "status",
	"duration_ms", "bytes", "caller", "cluster", "datacenter", "merchant_id"}

func testConfig(t *testing.T, out io.Writer) kit.Config {
	t.Helper()
	return kit.Config{
		Service: "orders", Version: "v1.2.3", Cluster: "kr-1", Datacenter: "dc-a",
		Output: out, ExportDisabled: true, SpoolDir: t.TempDir(), ShutdownTimeout: 10 * time.Second,
	}
}

// lines splits the output into JSON records, failing on anything that is
// not exactly one JSON object per line.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("log line is not one JSON object: %v\n%q", err, sc.Text())
		}
		if dec.More() {
			t.Fatalf("log line holds more than one JSON value: %q", sc.Text())
		}
		recs = append(recs, m)
	}
	return recs
}

func accessRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var acc []map[string]any
	for _, m := range lines(t, out) {
		if _, ok := m["route"]; ok {
			acc = append(acc, m)
		}
	}
	return acc
}

func assertExactKeys(t *testing.T, rec map[string]any) {
	t.Helper()
	var got []string
	for k := range rec {
		got = append(got, k)
	}
	sort.Strings(got)
	want := append([]string(nil), accessKeys...)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("access log keys\n got %v\nwant %v", got, want)
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)
var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestAccessLogAndAppLogShareTheTrace(t *testing.T) {
	out := &syncBuffer{}
	app := kit.NewWithConfig(testConfig(t, out))
	app.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		app.Logger().InfoContext(r.Context(), "loading order", "order_id", r.PathValue("id"))
		_, _ = io.WriteString(w, "order "+r.PathValue("id"))
	})
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+"/v1/orders/A-17", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("baggage", "caller.service=checkout,tenant=blue")
	req.Header.Set("X-Merchant-Id", "m-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "order A-17" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	acc := accessRecords(t, out.String())
	if len(acc) != 1 {
		t.Fatalf("want 1 access record, got %d:\n%s", len(acc), out.String())
	}
	a := acc[0]
	assertExactKeys(t, a)
	want := map[string]string{
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "service": "orders", "version": "v1.2.3",
		"method": "GET", "route": "/v1/orders/{id}", "status": "200", "bytes": "10",
		"caller": "checkout", "cluster": "kr-1", "datacenter": "dc-a", "merchant_id": "m-42",
	}
	for k, v := range want {
		if got := fmt.Sprint(a[k]); got != v {
			t.Errorf("access log %s = %q, want %q", k, got, v)
		}
	}
	spanID := fmt.Sprint(a["span_id"])
	if !hex16.MatchString(spanID) || spanID == "00f067aa0ba902b7" {
		t.Errorf("span_id %q must be a new span under the caller's, not the caller's own", spanID)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(a["time"])); err != nil {
		t.Errorf("time: %v", err)
	}
	if d, err := a["duration_ms"].(json.Number).Float64(); err != nil || d < 0 {
		t.Errorf("duration_ms = %v (%v)", a["duration_ms"], err)
	}

	var appLog map[string]any
	for _, m := range lines(t, out.String()) {
		if m["msg"] == "loading order" {
			appLog = m
		}
	}
	if appLog == nil {
		t.Fatalf("no application log record in:\n%s", out.String())
	}
	if appLog["trace_id"] != a["trace_id"] || appLog["span_id"] != a["span_id"] {
		t.Errorf("app log trace %v/%v, access log %v/%v", appLog["trace_id"], appLog["span_id"], a["trace_id"], a["span_id"])
	}
	if appLog["order_id"] != "A-17" || appLog["level"] != "INFO" || appLog["service"] != "orders" {
		t.Errorf("app log record: %v", appLog)
	}
}

func TestNoTraceparentStartsANewTrace(t *testing.T) {
	out := &syncBuffer{}
	app := kit.NewWithConfig(testConfig(t, out))
	app.HandleFunc("POST /v1/pay", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	rec := httptest.NewRecorder()
	app.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/pay", nil))
	_ = app.Close(context.Background())
	acc := accessRecords(t, out.String())
	if len(acc) != 1 {
		t.Fatalf("want 1 access record:\n%s", out.String())
	}
	if !hex32.MatchString(fmt.Sprint(acc[0]["trace_id"])) || acc[0]["trace_id"] == strings.Repeat("0", 32) {
		t.Errorf("trace_id %v", acc[0]["trace_id"])
	}
	if fmt.Sprint(acc[0]["status"]) != "201" || acc[0]["caller"] != "" || acc[0]["merchant_id"] != "" {
		t.Errorf("record %v", acc[0])
	}
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse with Prometheus' text parser: %v", err)
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestMetricsHaveBoundedRouteLabels(t *testing.T) {
	out := &syncBuffer{}
	app := kit.NewWithConfig(testConfig(t, out))
	app.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, _ *http.Request) {})
	app.HandleFunc("POST /v1/fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	h := app.Handler()
	for i := range 1000 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/v1/orders/%d-%x", i, i*7919), nil))
	}
	for i := range 100 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/scan/%d/etc/passwd", i), nil))
	}
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/fail", nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/v1/orders/1", nil))
	defer app.Close(context.Background())

	fams := scrape(t, h)
	reqs := fams["http_server_requests_total"]
	if reqs == nil {
		t.Fatal("no http_server_requests_total")
	}
	got := map[string]float64{}
	for _, m := range reqs.GetMetric() {
		if v := label(m, "version"); v != "v1.2.3" {
			t.Errorf("version label %q", v)
		}
		got[label(m, "method")+" "+label(m, "route")+" "+label(m, "status_class")] = m.GetCounter().GetValue()
	}
	want := map[string]float64{
		"GET /v1/orders/{id} 2xx": 1000,
		"GET unmatched 4xx":       100,
		"POST /v1/fail 5xx":       3,
		"OTHER unmatched 4xx":     1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests series\n got %v\nwant %v", got, want)
	}
	dur := fams["http_server_request_duration_seconds"]
	if dur == nil || dur.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatal("no duration histogram")
	}
	var n uint64
	for _, m := range dur.GetMetric() {
		n += m.GetHistogram().GetSampleCount()
	}
	if n != 1104 {
		t.Errorf("histogram observed %d requests, want 1104", n)
	}
	errs := fams["http_server_errors_total"]
	if errs == nil || len(errs.GetMetric()) != 1 || errs.GetMetric()[0].GetCounter().GetValue() != 3 {
		t.Errorf("errors series: %v", errs)
	}
	// Probes and scrapes stay out of the RED series and the access log.
	if strings.Contains(out.String(), `"route":"/metrics"`) {
		t.Error("/metrics scrape was access-logged")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	app := kit.NewWithConfig(testConfig(t, io.Discard))
	defer app.Close(context.Background())
	rec := httptest.NewRecorder()
	app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("/healthz %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 {
		t.Errorf("/readyz before Serve: %d, want 503", rec.Code)
	}
}

func TestClientPropagatesTraceAndCaller(t *testing.T) {
	outB := &syncBuffer{}
	cfgB := testConfig(t, outB)
	cfgB.Service = "ledger"
	b := kit.NewWithConfig(cfgB)
	var gotBaggage string
	b.HandleFunc("GET /v1/balance/{account}", func(w http.ResponseWriter, r *http.Request) {
		gotBaggage = r.Header.Get("baggage")
		_, _ = io.WriteString(w, "42")
	})
	srvB := httptest.NewServer(b.Handler())
	defer srvB.Close()

	outA := &syncBuffer{}
	a := kit.NewWithConfig(testConfig(t, outA))
	a.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", srvB.URL+"/v1/balance/"+r.PathValue("id"), nil)
		resp, err := a.Client().Do(req)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, resp.Body)
	})
	srvA := httptest.NewServer(a.Handler())
	defer srvA.Close()

	req, _ := http.NewRequest("GET", srvA.URL+"/v1/orders/7", nil)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	req.Header.Set("baggage", "caller.service=web,tenant=blue")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "42" {
		t.Fatalf("body %q", body)
	}
	_ = a.Close(context.Background())
	_ = b.Close(context.Background())

	accA := accessRecords(t, outA.String())
	accB := accessRecords(t, outB.String())
	if len(accA) != 1 || len(accB) != 1 {
		t.Fatalf("access records: A %d, B %d", len(accA), len(accB))
	}
	if accA[0]["caller"] != "web" || accB[0]["caller"] != "orders" {
		t.Errorf("caller: A %v (want web), B %v (want orders)", accA[0]["caller"], accB[0]["caller"])
	}
	if accB[0]["trace_id"] != "0af7651916cd43dd8448eb211c80319c" || accA[0]["trace_id"] != accB[0]["trace_id"] {
		t.Errorf("trace ids: A %v, B %v", accA[0]["trace_id"], accB[0]["trace_id"])
	}
	if accB[0]["route"] != "/v1/balance/{account}" {
		t.Errorf("B route %v", accB[0]["route"])
	}
	// Other baggage members pass through; caller.service is replaced.
	if !strings.Contains(gotBaggage, "tenant=blue") || !strings.Contains(gotBaggage, "caller.service=orders") || strings.Contains(gotBaggage, "caller.service=web") {
		t.Errorf("baggage at B: %q", gotBaggage)
	}
}

func TestPanicIsLoggedAs500(t *testing.T) {
	out := &syncBuffer{}
	app := kit.NewWithConfig(testConfig(t, out))
	app.HandleFunc("GET /v1/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	rec := httptest.NewRecorder()
	app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/boom", nil))
	_ = app.Close(context.Background())
	if rec.Code != 500 {
		t.Errorf("status %d", rec.Code)
	}
	acc := accessRecords(t, out.String())
	if len(acc) != 1 || fmt.Sprint(acc[0]["status"]) != "500" {
		t.Fatalf("access log: %v", acc)
	}
	if !strings.Contains(out.String(), `"msg":"handler panicked"`) || !strings.Contains(out.String(), `"panic":"kaboom"`) {
		t.Errorf("no panic record in:\n%s", out.String())
	}
}

// TestRouteHeaderReportsTheTemplate: every answer of a matched route
// carries the template in X-Pave-Route (the gateway counts by it), whether
// the handler writes a body, only a status, nothing at all, or panics; an
// unmatched request carries none.
func TestRouteHeaderReportsTheTemplate(t *testing.T) {
	out := &syncBuffer{}
	app := kit.NewWithConfig(testConfig(t, out))
	app.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	app.HandleFunc("POST /v1/pay", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	app.HandleFunc("DELETE /v1/orders/{id}", func(http.ResponseWriter, *http.Request) {})
	app.HandleFunc("GET /v1/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	defer app.Close(context.Background())
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v1/orders/42", "GET /v1/orders/{id}"},
		{"POST", "/v1/pay", "POST /v1/pay"},
		{"DELETE", "/v1/orders/7", "DELETE /v1/orders/{id}"},
		{"GET", "/v1/boom", "GET /v1/boom"},
		{"GET", "/nowhere", ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Values(kit.RouteHeader); strings.Join(got, ",") != tc.want {
			t.Errorf("%s %s: %s %q, want %q", tc.method, tc.path, kit.RouteHeader, got, tc.want)
		}
	}
}
