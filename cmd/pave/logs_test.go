package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// TestLogsAndTraceThroughPaveUp sends OTLP/JSON to a real `pave up`, then
// reads it back with `pave logs` and `pave trace`.
func TestLogsAndTraceThroughPaveUp(t *testing.T) {
	t.Parallel()
	otlp := freeAddr(t)
	p := startUp(t, t.TempDir(), "--otlp-addr", otlp)
	const trace = "0102030405060708090a0b0c0d0e0f10"
	logsBody := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}},{"key":"pave.cluster","value":{"stringValue":"east"}}]},
 "scopeLogs":[{"logRecords":[
  {"timeUnixNano":"NOW1","severityText":"ERROR","body":{"stringValue":"POST /v1/orders 502"},"traceId":"` + trace + `","spanId":"0102030405060708",
   "attributes":[{"key":"route","value":{"stringValue":"/v1/orders"}},{"key":"status","value":{"intValue":"502"}},{"key":"merchant_id","value":{"stringValue":"m42"}}]},
  {"timeUnixNano":"NOW0","severityText":"INFO","body":{"stringValue":"order received"},"traceId":"` + trace + `","spanId":"0102030405060708"}]}]}]}`
	// Times within the last second, so --since 1h sees them.
	ns := func(off int64) string { return jsonInt(nowNanos() - off) }
	logsBody = strings.NewReplacer("NOW1", ns(1_000_000), "NOW0", ns(2_000_000)).Replace(logsBody)
	resp, err := http.Post("http://"+otlp+"/v1/logs", "application/json", strings.NewReader(logsBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("OTLP logs: %s", resp.Status)
	}
	spanBody := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},"scopeSpans":[{"spans":[
  {"traceId":"` + trace + `","spanId":"0102030405060708","name":"POST /v1/orders","startTimeUnixNano":"` + ns(3_000_000) + `","endTimeUnixNano":"` + ns(500_000) + `","status":{"code":2}}]}]}]}`
	resp, err = http.Post("http://"+otlp+"/v1/traces", "application/json", strings.NewReader(spanBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("OTLP traces: %s", resp.Status)
	}

	out, err := pave(t, nil, "--server", p.api, "logs", "--service", "orders", "--since", "1h", "--where", "merchant_id=m42", "-o", "json")
	if err != nil {
		t.Fatalf("pave logs: %v\n%s", err, out)
	}
	var res telemetry.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("pave logs -o json: %v\n%s", err, out)
	}
	if len(res.Logs) != 1 || res.Logs[0].Status != 502 || res.Logs[0].Cluster != "east" || res.Logs[0].Route != "/v1/orders" {
		t.Fatalf("pave logs returned %+v", res.Logs)
	}
	out, err = pave(t, nil, "--server", p.api, "logs", "--level", "info", "--limit", "1")
	if err != nil || !strings.Contains(out, "POST /v1/orders 502") || strings.Contains(out, "order received") || !strings.Contains(out, "--cursor") {
		t.Fatalf("pave logs text, newest first with a cursor: %v\n%s", err, out)
	}
	// -o raw: the messages alone; --forward: oldest first.
	out, err = pave(t, nil, "--server", p.api, "logs", "--service", "orders", "--since", "1h", "--forward", "-o", "raw")
	if err != nil || out != "order received\nPOST /v1/orders 502\n" {
		t.Fatalf("pave logs --forward -o raw: %v %q", err, out)
	}
	out, err = pave(t, nil, "--server", p.api, "logs", "--service", "orders", "--since", "1h", "-o", "raw")
	if err != nil || out != "POST /v1/orders 502\norder received\n" {
		t.Fatalf("pave logs -o raw (newest first): %v %q", err, out)
	}
	out, err = pave(t, nil, "--server", p.api, "trace", strings.ToUpper(trace))
	if err != nil || !strings.Contains(out, "1 spans, 2 log lines") || strings.Index(out, "order received") > strings.Index(out, "502") {
		t.Fatalf("pave trace: %v\n%s", err, out)
	}
	for args, want := range map[string]string{
		"logs --where merchant_id":               "--where",
		"logs --since soon":                      "--since",
		"logs --regex (":                         "--regex",
		"trace nothex":                           "trace id",
		"logs --since 1h --from x":               "--since and --from",
		"trace ffffffffffffffffffffffffffffffff": "no spans or logs",
	} {
		out, err := pave(t, nil, append([]string{"--server", p.api}, strings.Fields(args)...)...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("pave %s: %v, output %q; want an error mentioning %q", args, err, out, want)
		}
	}
}

func nowNanos() int64        { return time.Now().UnixNano() }
func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

// TestLogsFollowPrintsNewLines runs `pave logs --follow` and sends a line
// after it started: the line must show up.
func TestLogsFollowPrintsNewLines(t *testing.T) {
	t.Parallel()
	otlp := freeAddr(t)
	p := startUp(t, t.TempDir(), "--otlp-addr", otlp)
	send := func(msg string) {
		t.Helper()
		body := `{"service":"orders","level":"WARN","msg":"` + msg + `"}` + "\n"
		resp, err := http.Post("http://"+otlp+"/v1/jsonlines", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("jsonlines: %s", resp.Status)
		}
	}
	send("before follow")
	cmd := exec.Command(paveBin(), "--server", p.api, "logs", "--service", "orders", "--follow", "-o", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	want := []string{"before follow", "after follow"}
	sent := false
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("pave logs --follow ended; still waiting for %v", want)
			}
			var got telemetry.Log
			if err := json.Unmarshal([]byte(l), &got); err != nil {
				t.Fatalf("--follow -o json printed %q: %v", l, err)
			}
			if got.Message != want[0] {
				t.Fatalf("--follow printed %q, want %q next", got.Message, want[0])
			}
			want = want[1:]
			if !sent {
				send("after follow")
				sent = true
			}
		case <-deadline:
			t.Fatalf("pave logs --follow did not print %v", want)
		}
	}
}
