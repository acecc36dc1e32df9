package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// `pave logs --count-by status` against a real `pave up`: the counts, as
// text and JSON, and the flags that do not go with a count refused.
func TestLogsCountByThroughPaveUp(t *testing.T) {
	t.Parallel()
	otlp := freeAddr(t)
	p := startUp(t, t.TempDir(), "--otlp-addr", otlp)
	var body strings.Builder
	now := time.Now().UTC()
	for i := 0; i < 7; i++ {
		fmt.Fprintf(&body, `{"time":%q,"msg":"GET /v1/pay","status":%d,"route":"/v1/pay"}`+"\n", now.Add(-time.Duration(i)*time.Second).Format(time.RFC3339Nano), []int{200, 500}[i%3/2])
	}
	resp, err := http.Post("http://"+otlp+"/v1/jsonlines?service=orders", "application/x-ndjson", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("jsonlines: %s", resp.Status)
	}
	out, err := pave(t, nil, "--server", p.api, "logs", "--service", "orders", "--since", "1h", "--count-by", "status", "-o", "json")
	if err != nil {
		t.Fatalf("pave logs --count-by: %v\n%s", err, out)
	}
	var res telemetry.CountResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Total != 7 || len(res.Counts) != 2 || res.Counts[0] != (telemetry.ValueCount{Value: "200", Count: 5}) || res.Counts[1] != (telemetry.ValueCount{Value: "500", Count: 2}) {
		t.Fatalf("counts: %+v", res)
	}
	out, err = pave(t, nil, "--server", p.api, "logs", "--since", "1h", "--count-by", "status")
	if err != nil || !strings.Contains(out, "VALUE (status)") || !strings.Contains(out, "500                      2") || !strings.Contains(out, "total                    7") {
		t.Fatalf("text: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--follow"}, {"--limit", "5"}, {"--count-by", "a b"}} {
		out, err = pave(t, nil, append([]string{"--server", p.api, "logs", "--count-by", "status"}, args...)...)
		if err == nil || !strings.Contains(out, "--") {
			t.Errorf("pave logs --count-by status %v: want a refusal naming the flag, got %v\n%s", args, err, out)
		}
	}
}
