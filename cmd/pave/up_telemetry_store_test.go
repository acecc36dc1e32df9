package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/vlstore/vltest"
)

// `pave up --telemetry-store victorialogs://…` on a real VictoriaLogs
// cluster (two storage nodes, one insert/select node): OTLP in, `pave
// logs`, `pave logs --count-by`, `pave trace` and the query API out, the
// records in VictoriaLogs and nothing in the data directory's embedded
// store.
func TestTelemetryStoreOnVictoriaLogsThroughPaveUp(t *testing.T) {
	t.Parallel()
	c := vltest.StartCluster(t)
	otlp := freeAddr(t)
	dir := t.TempDir()
	p := startUp(t, dir, "--otlp-addr", otlp, "--telemetry-store", c.URL())
	const trace = "0102030405060708090a0b0c0d0e0f10"
	ns := func(off int64) string { return jsonInt(nowNanos() - off) }
	logsBody := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}},{"key":"pave.cluster","value":{"stringValue":"east"}}]},
 "scopeLogs":[{"logRecords":[
  {"timeUnixNano":"` + ns(1_000_000) + `","severityText":"ERROR","body":{"stringValue":"POST /v1/orders 502"},"traceId":"` + trace + `","spanId":"0102030405060708",
   "attributes":[{"key":"route","value":{"stringValue":"/v1/orders"}},{"key":"status","value":{"intValue":"502"}},{"key":"merchant_id","value":{"stringValue":"m42"}},{"key":"psp","value":{"stringValue":"acme\" OR *"}}]},
  {"timeUnixNano":"` + ns(2_000_000) + `","severityText":"INFO","body":{"stringValue":"order received"},"traceId":"` + trace + `","spanId":"0102030405060708"}]}]}]}`
	spanBody := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},"scopeSpans":[{"spans":[
  {"traceId":"` + trace + `","spanId":"0102030405060708","name":"POST /v1/orders","startTimeUnixNano":"` + ns(3_000_000) + `","endTimeUnixNano":"` + ns(500_000) + `","status":{"code":2}}]}]}]}`
	for path, body := range map[string]string{"/v1/logs": logsBody, "/v1/traces": spanBody} {
		resp, err := http.Post("http://"+otlp+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("OTLP %s: %s %s", path, resp.Status, msg)
		}
	}

	out, err := pave(t, nil, "--server", p.api, "logs", "--service", "orders", "--since", "1h", "--where", `psp=acme" OR *`, "-o", "json")
	if err != nil {
		t.Fatalf("pave logs: %v\n%s", err, out)
	}
	var res telemetry.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("pave logs -o json: %v\n%s", err, out)
	}
	if len(res.Logs) != 1 || res.Logs[0].Status != 502 || res.Logs[0].Cluster != "east" || res.Logs[0].Route != "/v1/orders" || res.Logs[0].MerchantID != "m42" {
		t.Fatalf("pave logs returned %+v", res.Logs)
	}
	out, err = pave(t, nil, "--server", p.api, "logs", "--service", "orders", "--since", "1h", "-o", "raw")
	if err != nil || out != "POST /v1/orders 502\norder received\n" {
		t.Fatalf("pave logs -o raw (newest first): %v %q", err, out)
	}
	out, err = pave(t, nil, "--server", p.api, "logs", "--since", "1h", "--count-by", "status", "-o", "json")
	var counts telemetry.CountResult
	if err != nil || json.Unmarshal([]byte(out), &counts) != nil || counts.Total != 2 || len(counts.Counts) != 2 {
		t.Fatalf("pave logs --count-by status: %v\n%s", err, out)
	}
	out, err = pave(t, nil, "--server", p.api, "trace", trace)
	if err != nil || !strings.Contains(out, "1 spans, 2 log lines") || strings.Index(out, "order received") > strings.Index(out, "502") {
		t.Fatalf("pave trace: %v\n%s", err, out)
	}
	resp, err := http.Get(p.api + "/api/v1/traces/" + trace)
	if err != nil {
		t.Fatal(err)
	}
	var tr telemetry.TraceResult
	err = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if err != nil || len(tr.Spans) != 1 || tr.Spans[0].Status != "error" || len(tr.Logs) != 2 {
		t.Fatalf("GET /api/v1/traces: %v %+v", err, tr)
	}

	// The records are VictoriaLogs', not the data directory's.
	resp, err = http.Get("http://" + c.Front.Addr + "/select/logsql/query?query=" + url.QueryEscape(`trace_id:=`+trace+` | count() as n`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(raw)) != `{"n":"3"}` {
		t.Fatalf("VictoriaLogs holds %s for the trace, want 3 records", raw)
	}
	if _, err := os.Stat(filepath.Join(dir, "telemetry")); !os.IsNotExist(err) {
		t.Fatalf("the embedded store was opened too: %v", err)
	}
}

// An unreachable VictoriaLogs stops `pave up` at start, naming the setting.
func TestUpRefusesAnUnreachableTelemetryStore(t *testing.T) {
	t.Parallel()
	for store, want := range map[string]string{
		"victorialogs://" + freeAddr(t): "setting telemetry-store victorialogs://",
		"victorialogs://nohost":         "invalid setting telemetry-store",
	} {
		out, err := pave(t, nil, "up", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--otlp-addr", freeAddr(t),
			"--gateway-addr", freeAddr(t), "--telemetry-store", store)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("--telemetry-store %s: want a failure mentioning %q, got %v:\n%s", store, want, err, out)
		}
	}
}
