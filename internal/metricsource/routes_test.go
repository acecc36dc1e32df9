package metricsource

import (
	"context"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

// istioAndKit are the series of one service from both sources: Istio's
// (optionally with request_operation) and kit's route metrics, as the
// combined query's parts.
func istioAndKit(withOperation bool) map[string][]series {
	op := func(kv ...string) map[string]string {
		if withOperation {
			kv = append(kv, "request_operation", "GET /v1/orders/{id}")
		}
		return l(kv...)
	}
	return map[string][]series{
		"requests": {
			{op("destination_version", "v1", "response_code", "200"), "95"},
			{op("destination_version", "v1", "response_code", "503"), "5"},
		},
		"latency": {
			{op("destination_version", "v1", "le", "10"), "90"},
			{op("destination_version", "v1", "le", "+Inf"), "100"},
		},
		"route-requests": {
			{l("version", "v1", "route", "/v1/orders/{id}", "status_class", "2xx"), "60"},
			{l("version", "v1", "route", "/v1/pay", "status_class", "2xx"), "30"},
			{l("version", "v1", "route", "/v1/pay", "status_class", "5xx"), "4"},
			{l("route", "/v1/pay", "status_class", "2xx"), "7"}, // no version: ignored
		},
		"route-errors": {
			{l("version", "v1", "route", "/v1/pay"), "4"},
		},
		"route-latency": {
			{l("version", "v1", "route", "/v1/pay", "le", "0.01"), "20"},
			{l("version", "v1", "route", "/v1/pay", "le", "+Inf"), "34"},
		},
	}
}

// Istio series without request_operation take their routes from kit's
// metrics of the same service, in the same query; the version's totals
// stay Istio's (kit may not see every request, Istio does).
func TestIstioRoutesFallBackToKit(t *testing.T) {
	f := &fakeProm{parts: istioAndKit(false)}
	src, err := NewPrometheus(PrometheusOptions{URL: newFake(t, f), Namespace: "shop-ns"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.queries) != 1 {
		t.Fatalf("%d queries, want one for both sources", len(f.queries))
	}
	for _, want := range []string{`istio_requests_total{`, `http_server_requests_total{service="shop", namespace="shop-ns"}`, `"route-requests"`, `"route-latency"`} {
		if !strings.Contains(f.queries[0], want) {
			t.Errorf("query lacks %s: %s", want, f.queries[0])
		}
	}
	v1 := snap["v1"]
	if v1.Total.Requests != 100 || v1.Total.Errors != 5 || sum(v1.Total.Latency) != 100 {
		t.Errorf("total %+v, want Istio's 100 requests and 5 errors", v1.Total)
	}
	if r := v1.Routes["/v1/pay"]; r.Requests != 34 || r.Errors != 4 || r.ByClass["5xx"] != 4 || sum(r.Latency) != 34 || r.Latency[stats.Bucket(10)] != 20 {
		t.Errorf("/v1/pay from kit: %+v", r)
	}
	if r := v1.Routes["/v1/orders/{id}"]; r.Requests != 60 || r.Errors != 0 {
		t.Errorf("/v1/orders/{id} from kit: %+v", r)
	}
	if len(v1.Routes) != 2 || len(snap) != 1 {
		t.Errorf("routes %v, versions %v", v1.Routes, snap)
	}
}

// A mesh that sets request_operation is read alone: kit's series in the
// answer change nothing.
func TestIstioRoutesFromTheMeshIgnoreKit(t *testing.T) {
	f := &fakeProm{parts: istioAndKit(true)}
	src, err := NewPrometheus(PrometheusOptions{URL: newFake(t, f)})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	v1 := snap["v1"]
	if len(v1.Routes) != 1 || v1.Routes["GET /v1/orders/{id}"].Requests != 100 || v1.Routes["GET /v1/orders/{id}"].Errors != 5 {
		t.Errorf("routes %+v, want the mesh's one route", v1.Routes)
	}
	if v1.Total.Requests != 100 {
		t.Errorf("total %+v", v1.Total)
	}
}

// routeFallback "none" turns the fallback off: no kit query, no routes.
func TestIstioRouteFallbackOff(t *testing.T) {
	f := &fakeProm{parts: istioAndKit(false)}
	q, _ := Preset("istio")
	q.RouteFallback = "none"
	src, err := NewPrometheus(PrometheusOptions{URL: newFake(t, f), Queries: &q})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(f.queries[0], "http_server_requests_total") || snap["v1"].Routes != nil || snap["v1"].Total.Requests != 100 {
		t.Errorf("with the fallback off: query %s, snapshot %+v", f.queries[0], snap["v1"])
	}
}
