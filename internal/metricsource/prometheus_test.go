package metricsource

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

func TestNewPrometheusRefusesBadConfig(t *testing.T) {
	for _, c := range []struct {
		o    PrometheusOptions
		want string
	}{
		{PrometheusOptions{URL: "prometheus:9090"}, "want http(s)://host:port"},
		{PrometheusOptions{URL: "http://p:9090", Preset: "linkerd"}, `preset "linkerd" does not exist: want one of gateway, istio, kit`},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: `sum by (destination_version, response_code) (x{s="{{.Service}"})`, Latency: "sum by (destination_version, le) (y)"}}, "requests query template"},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: `sum by (destination_version, response_code) (x{s="{{.Servce}}"})`, Latency: "sum by (destination_version, le) (y)"}}, "can't evaluate field Servce"},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "sum by (pod, response_code) (x)", Latency: "sum by (destination_version, le) (y)"}}, `requests query "sum by (pod, response_code) (x)" does not mention the label "destination_version"`},
		// A label inside a longer name is not the label.
		{PrometheusOptions{URL: "http://p:9090", Preset: "kit", Queries: &Queries{Requests: "sum by (version, status_class) (x)", Latency: "sum by (version, lex) (y)"}}, `latency query "sum by (version, lex) (y)" does not mention the label "le"`},
		{PrometheusOptions{URL: "http://p:9090", Preset: "kit", Queries: &Queries{Requests: "sum by (version) (x)", Latency: "sum by (version, le) (y)"}}, `does not mention the label "status_class"`},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "sum by (destination_version, response_code) (x)", Latency: ""}}, "the latency query is empty"},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "sum by (v) (x)", Errors: "sum by (v) (e)", Latency: "sum by (v, le) (y)", VersionLabel: "v", LatencyUnit: "us"}}, `latencyUnit "us": want ms or s`},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "x", Latency: "y", RouteFallback: "linkerd"}}, `routeFallback: prometheus preset "linkerd" does not exist`},
	} {
		if _, err := NewPrometheus(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	for _, preset := range PresetNames() {
		if _, err := NewPrometheus(PrometheusOptions{URL: "http://p:9090", Preset: preset}); err != nil {
			t.Errorf("preset %s: %v", preset, err)
		}
	}
	// An override with its own errors query needs no status label.
	if _, err := NewPrometheus(PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "sum by (v) (x)", Errors: "sum by (v) (e)", Latency: "sum by (v, le) (y)", VersionLabel: "v"}}); err != nil {
		t.Errorf("override with an errors query: %v", err)
	}
}

func TestStatusClass(t *testing.T) {
	for in, want := range map[string]string{"503": "5xx", "200": "2xx", "404": "4xx", "5xx": "5xx", "0": "failed", "failed": "failed", "": "other", "abc": "other", "700": "other"} {
		if got := statusClass(in); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// series is one sample of an instant vector.
type series struct {
	labels map[string]string
	value  string
}

func l(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// fakeProm answers /api/v1/query like Prometheus does, with the series of
// whichever part of the combined query (requests, errors, latency) it
// names, and records the queries it got.
type fakeProm struct {
	mu      sync.Mutex
	queries []string
	methods []string
	parts   map[string][]series
	status  int
	body    string // when set, answered as is
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	q := r.FormValue("query")
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.methods = append(f.methods, r.Method)
	f.mu.Unlock()
	if f.body != "" {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	type result struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	res := []result{}
	for part, ss := range f.parts {
		if !strings.Contains(q, `"`+queryLabel+`", "`+part+`"`) {
			continue
		}
		for _, s := range ss {
			m := map[string]string{queryLabel: part}
			for k, v := range s.labels {
				m[k] = v
			}
			res = append(res, result{m, [2]any{1764000000.123, s.value}})
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": res}})
}

func newFake(t *testing.T, f *fakeProm) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestSnapshotIstio(t *testing.T) {
	f := &fakeProm{parts: map[string][]series{
		"requests": {
			{l("destination_version", "v1", "response_code", "200"), "990"},
			{l("destination_version", "v1", "response_code", "503"), "7"},
			{l("destination_version", "v1", "response_code", "0"), "3"},
			{l("destination_version", "v2", "response_code", "200"), "95.00000001"},
			{l("destination_version", "v2", "response_code", "404"), "5"},
			{l("response_code", "200"), "1000"}, // no version: ignored
		},
		"errors": {
			{l("destination_version", "v1"), "10"},
		},
		"latency": {
			// Out of order, as Prometheus may give them.
			{l("destination_version", "v1", "le", "+Inf"), "1000"},
			{l("destination_version", "v1", "le", "10"), "900"},
			{l("destination_version", "v1", "le", "100"), "990"},
			{l("destination_version", "v1", "le", "1"), "0"},
			{l("destination_version", "v2", "le", "250"), "100"},
			{l("destination_version", "v2", "le", "+Inf"), "100"},
		},
	}}
	src, err := NewPrometheus(PrometheusOptions{URL: newFake(t, f), Namespace: "shop-ns"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.queries) != 1 || f.methods[0] != http.MethodPost {
		t.Fatalf("want one POSTed query per snapshot, got %v %q", f.methods, f.queries)
	}
	for _, want := range []string{`destination_service_name="shop"`, `destination_service_namespace="shop-ns"`, `istio_requests_total{`, `istio_request_duration_milliseconds_bucket`, ` or `} {
		if !strings.Contains(f.queries[0], want) {
			t.Errorf("query lacks %s: %s", want, f.queries[0])
		}
	}
	v1 := snap["v1"].Total
	if v1.Requests != 1000 || v1.Errors != 10 || v1.ByClass["2xx"] != 990 || v1.ByClass["5xx"] != 7 || v1.ByClass["failed"] != 3 {
		t.Errorf("v1 %+v", v1)
	}
	// v2 has no errors series: no 5xx, and a 404 is no error.
	if v2 := snap["v2"].Total; v2.Requests != 100 || v2.Errors != 0 || v2.ByClass["4xx"] != 5 {
		t.Errorf("v2 %+v", v2)
	}
	if len(snap) != 2 || snap["v1"].Routes != nil {
		t.Errorf("versions %v", snap)
	}
	want := make([]uint64, stats.NumBuckets)
	want[stats.Bucket(10)] = 900
	want[stats.Bucket(100)] = 90
	want[stats.NumBuckets-1] = 10
	if got := snap["v1"].Total.Latency; !equal(got, want) {
		t.Errorf("v1 latency %v, want %v", nonzero(got), nonzero(want))
	}
	if got := snap["v2"].Total.Latency; got[stats.Bucket(250)] != 100 {
		t.Errorf("v2 latency %v", nonzero(got))
	}
	// p50 of v1 lies in the stats bucket holding 10 ms: just under it.
	if p50 := snap["v1"].Total.Quantile(0.5); p50 < 8 || p50 > 10*1.25 {
		t.Errorf("v1 p50 %.2f ms", p50)
	}
}

func TestSnapshotKitRoutesAndSeconds(t *testing.T) {
	f := &fakeProm{parts: map[string][]series{
		"requests": {
			{l("version", "v1", "route", "GET /a", "status_class", "2xx"), "80"},
			{l("version", "v1", "route", "GET /a", "status_class", "5xx"), "20"},
			{l("version", "v1", "route", "POST /b", "status_class", "2xx"), "50"},
		},
		"errors": {
			{l("version", "v1", "route", "GET /a"), "20"},
		},
		"latency": {
			{l("version", "v1", "route", "GET /a", "le", "0.005"), "60"},
			{l("version", "v1", "route", "GET /a", "le", "0.1"), "100"},
			{l("version", "v1", "route", "GET /a", "le", "+Inf"), "100"},
			{l("version", "v1", "route", "POST /b", "le", "0.005"), "0"},
			{l("version", "v1", "route", "POST /b", "le", "0.1"), "50"},
			{l("version", "v1", "route", "POST /b", "le", "+Inf"), "50"},
		},
	}}
	src, err := NewPrometheus(PrometheusOptions{URL: newFake(t, f), Preset: "kit"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(context.Background(), "cart")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.queries[0], `http_server_requests_total{service="cart", namespace="default"}`) {
		t.Errorf("query %s", f.queries[0])
	}
	v := snap["v1"]
	if v.Total.Requests != 150 || v.Total.Errors != 20 || v.Total.ByClass["5xx"] != 20 {
		t.Errorf("total %+v", v.Total)
	}
	a, b := v.Routes["GET /a"], v.Routes["POST /b"]
	if a.Requests != 100 || a.Errors != 20 || b.Requests != 50 || b.Errors != 0 {
		t.Errorf("routes %+v", v.Routes)
	}
	// le in seconds: 0.005 s is the stats bucket holding 5 ms.
	if a.Latency[stats.Bucket(5)] != 60 || a.Latency[stats.Bucket(100)] != 40 || b.Latency[stats.Bucket(100)] != 50 {
		t.Errorf("route latency a %v b %v", nonzero(a.Latency), nonzero(b.Latency))
	}
	if v.Total.Latency[stats.Bucket(100)] != 90 || v.Total.Latency[stats.Bucket(5)] != 60 {
		t.Errorf("total latency %v", nonzero(v.Total.Latency))
	}
}

// The gateway exports Pave's own bounds in seconds: read back, each must
// land in its own bucket, not one above through a rounding error.
func TestSnapshotGatewayBoundsRoundTrip(t *testing.T) {
	var lat []series
	for i, b := range stats.LatencyBounds {
		lat = append(lat, series{l("version", "v1", "le", strconv.FormatFloat(b/1000, 'g', -1, 64)), strconv.Itoa(i + 1)})
	}
	lat = append(lat, series{l("version", "v1", "le", "+Inf"), strconv.Itoa(len(stats.LatencyBounds) + 1)})
	f := &fakeProm{parts: map[string][]series{
		"requests": {{l("version", "v1", "route", "/", "class", "failed"), "4"}, {l("version", "v1", "route", "/", "class", "2xx"), "6"}},
		"latency":  lat,
	}}
	src, err := NewPrometheus(PrometheusOptions{URL: newFake(t, f), Preset: "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range snap["v1"].Total.Latency {
		if n != 1 {
			t.Fatalf("bucket %d has %d, want 1: %v", i, n, nonzero(snap["v1"].Total.Latency))
		}
	}
	// Without an errors query, failures to answer are errors.
	if c := snap["v1"].Routes["/"]; c.Requests != 10 || c.Errors != 4 || snap["v1"].Total.Errors != 4 {
		t.Errorf("counts %+v", snap["v1"])
	}
}

// Two snapshots subtract to the window, as the engine uses them.
func TestSnapshotsSubtractToWindow(t *testing.T) {
	f := &fakeProm{}
	url := newFake(t, f)
	src, err := NewPrometheus(PrometheusOptions{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	set := func(ok, bad, fast string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.parts = map[string][]series{
			"requests": {{l("destination_version", "v2", "response_code", "200"), ok}, {l("destination_version", "v2", "response_code", "500"), bad}},
			"errors":   {{l("destination_version", "v2"), bad}},
			"latency":  {{l("destination_version", "v2", "le", "5"), fast}, {l("destination_version", "v2", "le", "+Inf"), fast}},
		}
	}
	set("100", "1", "101")
	before, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	set("150", "11", "161")
	after, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	w := after["v2"].Sub(before["v2"]).Total
	if w.Requests != 60 || w.Errors != 10 || w.ErrorRate() < 0.16 || w.ErrorRate() > 0.17 || w.Latency[stats.Bucket(5)] != 60 {
		t.Errorf("window %+v", w)
	}
}

func TestSnapshotErrorsNameURLAndQuery(t *testing.T) {
	ctx := context.Background()
	bad := &fakeProm{status: http.StatusBadRequest, body: `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`}
	u := newFake(t, bad)
	src, _ := NewPrometheus(PrometheusOptions{URL: u})
	_, err := src.Snapshot(ctx, "shop")
	if err == nil || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "istio_requests_total") || !strings.Contains(err.Error(), "bad_data: 1:5: parse error") {
		t.Errorf("refused query: %v", err)
	}

	html := &fakeProm{status: http.StatusOK, body: "<html>Grafana</html>"}
	src, _ = NewPrometheus(PrometheusOptions{URL: newFake(t, html)})
	if _, err := src.Snapshot(ctx, "shop"); err == nil || !strings.Contains(err.Error(), "not the query API's JSON") || !strings.Contains(err.Error(), "Grafana") {
		t.Errorf("not Prometheus: %v", err)
	}

	matrix := &fakeProm{status: http.StatusOK, body: `{"status":"success","data":{"resultType":"matrix","result":[]}}`}
	src, _ = NewPrometheus(PrometheusOptions{URL: newFake(t, matrix)})
	if _, err := src.Snapshot(ctx, "shop"); err == nil || !strings.Contains(err.Error(), "gave a matrix, want an instant vector") {
		t.Errorf("range vector: %v", err)
	}

	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	src, _ = NewPrometheus(PrometheusOptions{URL: gone.URL})
	_, err = src.Snapshot(ctx, "shop")
	if err == nil || !strings.Contains(err.Error(), gone.URL+" unreachable") || !strings.Contains(err.Error(), `destination_service_name="shop"`) {
		t.Errorf("unreachable: %v", err)
	}
	if _, err := src.Snapshot(ctx, ""); err == nil || !strings.Contains(err.Error(), "no service") {
		t.Errorf("no service: %v", err)
	}
}

// A service name cannot break out of the PromQL string it is put in.
func TestQueryEscapesService(t *testing.T) {
	src, err := NewPrometheus(PrometheusOptions{URL: "http://p:9090", Namespace: `a"b`})
	if err != nil {
		t.Fatal(err)
	}
	q, err := src.Query(`x"} or vector(1) or {a="`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q, `destination_service_name="x\"} or vector(1) or {a=\""`) || !strings.Contains(q, `destination_service_namespace="a\"b"`) {
		t.Errorf("query %s", q)
	}
}

// A proxy that refuses POST gets a GET.
func TestSnapshotFallsBackToGET(t *testing.T) {
	f := &fakeProm{parts: map[string][]series{"requests": {{l("destination_version", "v1", "response_code", "200"), "3"}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	src, _ := NewPrometheus(PrometheusOptions{URL: srv.URL})
	snap, err := src.Snapshot(context.Background(), "shop")
	if err != nil || snap["v1"].Total.Requests != 3 {
		t.Fatalf("%v %+v", err, snap)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// nonzero shows a histogram as bucket index: count.
func nonzero(h []uint64) map[int]uint64 {
	out := map[int]uint64{}
	for i, n := range h {
		if n != 0 {
			out[i] = n
		}
	}
	return out
}

// A pod that restarts (its counters back to zero) and a pod replaced by
// another (its series gone, a new one begun) do not make the totals go
// back: each series is corrected for resets, as increase() does, so the
// difference of two snapshots is what was served in between. Two pods'
// histograms of one version add up bound by bound.
func TestSnapshotsSurvivePodRestartsAndReplacements(t *testing.T) {
	pod := func(name, code, v string) series {
		return series{l("destination_version", "v2", "pod", name, "response_code", code, "request_operation", "GET /v1/orders/{id}"), v}
	}
	bucket := func(name, le, v string) series {
		return series{l("destination_version", "v2", "pod", name, "le", le), v}
	}
	f := &fakeProm{parts: map[string][]series{
		"requests": {pod("a", "200", "100"), pod("a", "503", "4"), pod("b", "200", "50")},
		"latency":  {bucket("a", "10", "90"), bucket("a", "+Inf", "104"), bucket("b", "10", "50"), bucket("b", "+Inf", "50")},
	}}
	src, err := NewPrometheus(PrometheusOptions{URL: newFake(t, f), Preset: "istio"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if v := first["v2"].Total; v.Requests != 154 || v.Errors != 4 || v.Latency[stats.Bucket(10)] != 140 || v.Latency[stats.NumBuckets-1] != 14 {
		t.Fatalf("first snapshot %+v", v)
	}
	if r := first["v2"].Routes["GET /v1/orders/{id}"]; r.Requests != 154 {
		t.Fatalf("request_operation is the route: %+v", first["v2"].Routes)
	}
	// Pod a restarted and served 10 since; pod b was replaced by pod c,
	// which served 7.
	f.mu.Lock()
	f.parts = map[string][]series{
		"requests": {pod("a", "200", "10"), pod("c", "200", "7")},
		"latency":  {bucket("a", "10", "10"), bucket("a", "+Inf", "10"), bucket("c", "10", "7"), bucket("c", "+Inf", "7")},
	}
	f.mu.Unlock()
	second, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	w := second["v2"].Sub(first["v2"]).Total
	if w.Requests != 17 || w.Errors != 0 || w.Latency[stats.Bucket(10)] != 17 {
		t.Fatalf("window through a restart and a replacement: %+v (first %+v, second %+v)", w, first["v2"].Total, second["v2"].Total)
	}
}
