package server

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

func telemetryServer(t *testing.T) (*httptest.Server, *telemetry.Embedded) {
	t.Helper()
	st, err := telemetry.Open(context.Background(), telemetry.Options{Dir: t.TempDir(), MaintainEvery: -1, ColdAfter: -1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	TelemetryAPI{Store: st, Stats: st.Stats}.Register(s)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	now := time.Now()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	var logs []telemetry.Log
	for i := 0; i < 30; i++ {
		logs = append(logs, telemetry.Log{Time: now.Add(-time.Duration(i) * time.Second), Service: "orders", Level: "INFO", Message: "line", Route: "/v1/x", Status: 200})
	}
	logs = append(logs, telemetry.Log{Time: now.Add(-time.Minute), Service: "orders", Level: "ERROR", Message: "boom", TraceID: trace, SpanID: "00000000000000a1", Attrs: telemetry.AttrsOf(map[string]string{"psp": "acme"})})
	if err := st.AppendLogs(context.Background(), logs); err != nil {
		t.Fatal(err)
	}
	spans := []telemetry.Span{
		{TraceID: trace, SpanID: "00000000000000a1", Name: "POST /v1/orders", Service: "orders", Start: now.Add(-time.Minute), End: now.Add(-time.Minute + 40*time.Millisecond), Status: "error", Kind: "server"},
		{TraceID: trace, SpanID: "00000000000000b2", ParentID: "00000000000000a1", Name: "charge", Service: "payments", Start: now.Add(-time.Minute + time.Millisecond), End: now.Add(-time.Minute + 30*time.Millisecond)},
	}
	if err := st.AppendSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	return ts, st
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

func TestTelemetryAPIQueryPagingAndErrors(t *testing.T) {
	ts, _ := telemetryServer(t)
	var res telemetry.Result
	if code := getJSON(t, ts.URL+"/api/v1/logs?service=orders&since=1h&limit=20", &res); code != 200 || len(res.Logs) != 20 || res.Next == "" {
		t.Fatalf("first page: %d, %d lines, next %q", code, len(res.Logs), res.Next)
	}
	var page2 telemetry.Result
	getJSON(t, ts.URL+"/api/v1/logs?service=orders&since=1h&limit=20&cursor="+res.Next, &page2)
	if len(page2.Logs) != 11 || page2.Next != "" || page2.Logs[10].Message != "boom" {
		t.Fatalf("second page: %d lines, next %q", len(page2.Logs), page2.Next)
	}
	for q, field := range map[string]string{"since=later": "since", "where=x": "where[0]", "level=loud": "level", "format=xml": "format", "bogus=1": "bogus"} {
		var e APIError
		if code := getJSON(t, ts.URL+"/api/v1/logs?"+q, &e); code != 400 || e.Field != field {
			t.Errorf("%s: %d %+v; want 400 naming %s", q, code, e, field)
		}
	}
	resp, err := http.Get(ts.URL + "/api/v1/logs?format=ndjson&limit=5")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if resp.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) != 6 || !strings.Contains(lines[5], `"next"`) {
		t.Fatalf("ndjson: %s %q", resp.Header.Get("Content-Type"), lines)
	}
}

func TestTelemetryAPITraceAndJaeger(t *testing.T) {
	ts, _ := telemetryServer(t)
	var tr telemetry.TraceResult
	if code := getJSON(t, ts.URL+"/api/v1/traces/4BF92F3577B34DA6A3CE929D0E0E4736", &tr); code != 200 || len(tr.Spans) != 2 || len(tr.Logs) != 1 {
		t.Fatalf("trace: %d %+v", code, tr)
	}
	var e APIError
	if code := getJSON(t, ts.URL+"/api/v1/traces/ffffffffffffffffffffffffffffffff", &e); code != 404 || e.Field != "trace_id" {
		t.Fatalf("unknown trace: %d %+v", code, e)
	}
	if code := getJSON(t, ts.URL+"/api/v1/traces/xyz", &e); code != 400 || e.Field != "trace_id" {
		t.Fatalf("bad trace id: %d %+v", code, e)
	}
	var j struct {
		Data []struct {
			TraceID string `json:"traceID"`
			Spans   []struct {
				SpanID     string `json:"spanID"`
				ProcessID  string `json:"processID"`
				Duration   int64  `json:"duration"`
				References []struct {
					RefType, SpanID string
				} `json:"references"`
				Logs []struct {
					Fields []struct {
						Key   string `json:"key"`
						Value any    `json:"value"`
					} `json:"fields"`
				} `json:"logs"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if code := getJSON(t, ts.URL+"/api/traces/4bf92f3577b34da6a3ce929d0e0e4736", &j); code != 200 || len(j.Data) != 1 || len(j.Data[0].Spans) != 2 {
		t.Fatalf("jaeger: %d %+v", code, j)
	}
	root, child := j.Data[0].Spans[0], j.Data[0].Spans[1]
	if root.Duration != 40000 || len(root.Logs) != 1 || root.Logs[0].Fields[0].Value != "boom" ||
		len(child.References) != 1 || child.References[0].RefType != "CHILD_OF" || child.References[0].SpanID != root.SpanID ||
		j.Data[0].Processes[child.ProcessID].ServiceName != "payments" {
		t.Fatalf("jaeger model: %+v", j.Data[0])
	}
	var st telemetry.Stats
	if code := getJSON(t, ts.URL+"/api/v1/telemetry/stats", &st); code != 200 || st.Records != 33 {
		t.Fatalf("stats: %d %+v", code, st)
	}
}
