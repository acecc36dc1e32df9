package server

import (
	"context"
	"testing"

	"github.com/pave-platform/pave/internal/telemetry"
)

// GET /api/v1/logs/count counts the lines of the memory table and of the
// flushed blocks alike, and names the wrong parameter.
func TestTelemetryAPICountByStatus(t *testing.T) {
	ts, st := telemetryServer(t)
	check := func(stage string) {
		t.Helper()
		var res telemetry.CountResult
		if code := getJSON(t, ts.URL+"/api/v1/logs/count?by=status&service=orders&since=1h", &res); code != 200 {
			t.Fatalf("%s: %d", stage, code)
		}
		want := []telemetry.ValueCount{{Value: "200", Count: 30}, {Value: "", Count: 1}}
		if res.By != "status" || res.Total != 31 || len(res.Counts) != 2 || res.Counts[0] != want[0] || res.Counts[1] != want[1] {
			t.Fatalf("%s: %+v, want %v", stage, res, want)
		}
	}
	check("in memory")
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("flushed")
	var byAttr telemetry.CountResult
	getJSON(t, ts.URL+"/api/v1/logs/count?by=psp&level=error", &byAttr)
	if byAttr.Total != 1 || byAttr.Counts[0].Value != "acme" {
		t.Fatalf("count by an attribute: %+v", byAttr)
	}
	for q, field := range map[string]string{"": "by", "by=a%20b": "by", "by=status&limit=5": "limit", "by=status&cursor=1.0": "cursor", "by=status&since=x": "since"} {
		var e APIError
		if code := getJSON(t, ts.URL+"/api/v1/logs/count?"+q, &e); code != 400 || e.Field != field {
			t.Errorf("%q: %d %+v; want 400 naming %s", q, code, e, field)
		}
	}
}
