package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/web"
)

// seedTelemetry stores one failing request across two services (three
// spans, four log lines) among fifty unrelated access lines.
func seedTelemetry(t *testing.T, s *telemetry.Embedded, now time.Time) {
	t.Helper()
	ctx := context.Background()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	start := now.Add(-10 * time.Minute).Truncate(time.Millisecond)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	var noise []telemetry.Log
	for i := 0; i < 50; i++ {
		svc := []string{"orders", "payments"}[i%2]
		noise = append(noise, telemetry.Log{Time: now.Add(-time.Duration(i+1) * 30 * time.Second), Service: svc, Version: "v1", Level: "INFO",
			Kind: "access", Message: "GET /v1/items 200", Method: "GET", Route: "/v1/items", Status: 200, DurationMS: 3.2, Caller: "web",
			Cluster: "west", Datacenter: "dc1", MerchantID: fmt.Sprintf("m%d", i), TraceID: fmt.Sprintf("%032x", i+1), SpanID: fmt.Sprintf("%016x", i+1)})
	}
	if err := s.AppendLogs(ctx, noise); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil { // half the data from blocks, half from memory
		t.Fatal(err)
	}
	spans := []telemetry.Span{
		{TraceID: trace, SpanID: "00000000000000a1", Name: "POST /v1/orders", Service: "orders", Start: at(0), End: at(40), Status: "error",
			Attrs: telemetry.AttrsOf(map[string]string{"pave.cluster": "east", "pave.datacenter": "dc2"})},
		{TraceID: trace, SpanID: "00000000000000b2", ParentID: "00000000000000a1", Name: "charge", Service: "payments", Start: at(5), End: at(35), Status: "error", StatusText: "psp refused"},
		{TraceID: trace, SpanID: "00000000000000c3", ParentID: "00000000000000b2", Name: "SELECT merchant", Service: "payments", Start: at(8), End: at(13)},
	}
	logs := []telemetry.Log{
		{Time: at(1), Service: "orders", Level: "INFO", Kind: "app", Message: "order received", TraceID: trace, SpanID: "00000000000000a1", Attrs: telemetry.AttrsOf(map[string]string{"items": "3"})},
		{Time: at(20), Service: "payments", Level: "WARN", Kind: "app", Message: "psp slow", TraceID: trace, SpanID: "00000000000000b2"},
		{Time: at(34), Service: "payments", Level: "ERROR", Kind: "app", Message: "psp refused", TraceID: trace, SpanID: "00000000000000b2", Attrs: telemetry.AttrsOf(map[string]string{"psp": "acme"})},
		{Time: at(40), Service: "orders", Version: "v3", Level: "ERROR", Kind: "access", Message: "POST /v1/orders 502", TraceID: trace, SpanID: "00000000000000a1",
			Method: "POST", Route: "/v1/orders", Status: 502, DurationMS: 40, Bytes: 120, Caller: "web", Cluster: "east", Datacenter: "dc2", MerchantID: "m42"},
	}
	if err := s.AppendSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
}

func TestTelemetryUIInChromium(t *testing.T) {
	requireBrowser(t)
	store, err := telemetry.Open(context.Background(), telemetry.Options{Dir: t.TempDir(), MaintainEvery: -1, ColdAfter: -1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	seedTelemetry(t, store, time.Now())

	srv := server.New(server.Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	server.TelemetryAPI{Store: store, Stats: store.Stats}.Register(srv)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	artifacts := testproc.ArtifactsDir(t)
	if err := testproc.RunBrowserScript(context.Background(), t, testproc.BrowserScript{
		Dir: ".", Name: "telemetry.mjs", Env: []string{"PAVE_URL=" + ts.URL, "PAVE_ARTIFACTS=" + artifacts},
	}); err != nil {
		t.Fatal(err)
	}
	for _, shot := range []string{"telemetry-logs.png", "telemetry-request.png", "telemetry-request-bad-id.png"} {
		if _, err := os.Stat(filepath.Join(artifacts, shot)); err != nil {
			t.Errorf("screenshot %s: %v", shot, err)
		}
	}
}
