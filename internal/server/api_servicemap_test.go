package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/servicemap"
	"github.com/pave-platform/pave/internal/telemetry"
)

// The map is drawn from access logs written to the real embedded store:
// checkout → orders in two clusters, orders → payments with failures, an
// external caller, and orders v2 in a canary as its own node.
func TestServiceMapFromAccessLogs(t *testing.T) {
	st, err := telemetry.Open(context.Background(), telemetry.Options{Dir: t.TempDir(), MaintainEvery: -1, ColdAfter: -1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	var logs []telemetry.Log
	access := func(ago time.Duration, caller, service, version, cluster string, status int, ms float64, trace string) {
		logs = append(logs, telemetry.Log{Time: now.Add(-ago), Service: service, Version: version, Kind: "access", Level: "INFO", Message: "GET /v1/x",
			Caller: caller, Cluster: cluster, Status: status, DurationMS: ms, TraceID: trace, Method: "GET", Route: "/v1/x"})
	}
	for i := range 100 {
		ago := time.Duration(i) * time.Second
		access(ago, "checkout", "orders", "v1", "seoul", 200, float64(i+1), "")
		if i < 40 {
			access(ago, "checkout", "orders", "v1", "busan", 200, 5, "")
		}
		status := 200
		if i%10 == 0 {
			status = 503
		}
		access(ago, "orders", "payments", "v7", "seoul", status, 20, "4bf92f3577b34da6a3ce929d0e0e47"+string(rune('0'+i/10))+"0")
		if i < 10 {
			access(ago, "checkout", "orders", "v2", "seoul", 200, 3, "")
			access(ago, "", "checkout", "v3", "seoul", 200, 1, "")
		}
	}
	// Outside the window: not counted.
	access(time.Hour, "ghost", "orders", "v1", "seoul", 500, 1, "")
	// Not an access log: not counted.
	logs = append(logs, telemetry.Log{Time: now, Service: "orders", Kind: "app", Level: "ERROR", Message: "x", Caller: "ghost"})
	if err := st.AppendLogs(context.Background(), logs); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	ServiceMapAPI{Store: st, Now: func() time.Time { return now.Add(time.Second) }, Canaries: func(context.Context) ([]servicemap.Canary, error) {
		return []servicemap.Canary{{Service: "orders", Version: "v2"}}, nil
	}}.Register(s)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)

	resp, err := ts.Client().Get(ts.URL + "/api/v1/servicemap?since=15m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var g servicemap.Graph
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	edges := map[string]servicemap.Edge{}
	for _, e := range g.Edges {
		edges[e.From+">"+e.To+"@"+e.Cluster] = e
	}
	if len(g.Edges) != 5 {
		t.Errorf("edges %+v, want 5", g.Edges)
	}
	if e := edges["checkout>orders@seoul"]; e.Requests != 100 || e.Errors != 0 || e.P99Ms != 99 {
		t.Errorf("checkout>orders@seoul = %+v, want 100 requests, p99 99ms", e)
	}
	if e := edges["checkout>orders@busan"]; e.Requests != 40 {
		t.Errorf("checkout>orders@busan = %+v", e)
	}
	if e := edges["orders>payments@seoul"]; e.Requests != 100 || e.Errors != 10 || e.ErrorRatio != 0.1 || e.FailingTrace == "" {
		t.Errorf("orders>payments = %+v, want 10%% errors and a failing trace", e)
	}
	if e := edges["checkout>orders@v2@seoul"]; e.Requests != 10 {
		t.Errorf("canary edge = %+v (edges %v)", e, edges)
	}
	if e := edges["(external)>checkout@seoul"]; e.Requests != 10 {
		t.Errorf("external edge = %+v", e)
	}
	var canary, ghost bool
	for _, n := range g.Nodes {
		canary = canary || (n.ID == "orders@v2" && n.Canary && n.Service == "orders" && n.Version == "v2")
		ghost = ghost || n.ID == "ghost"
	}
	if !canary || ghost {
		t.Errorf("nodes %+v: want the canary node orders@v2 and no ghost", g.Nodes)
	}

	resp2, err := ts.Client().Get(ts.URL + "/api/v1/servicemap?window=1h")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown parameter: status %d, want 400", resp2.StatusCode)
	}
}
