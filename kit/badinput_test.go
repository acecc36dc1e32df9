package kit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pave-platform/pave/kit"
)

func droppedCount(t *testing.T, app *kit.App, field string) float64 {
	t.Helper()
	fams := scrape(t, app.Handler())
	f := fams["kit_dropped_fields_total"]
	if f == nil {
		t.Fatal("no kit_dropped_fields_total")
	}
	for _, m := range f.GetMetric() {
		if label(m, "field") == field {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("kit_dropped_fields_total has no field=%q series", field)
	return 0
}

func TestBadInputIsServedDroppedAndCounted(t *testing.T) {
	const goodTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name    string
		headers map[string]string
		field   string // counter that must move
		check   func(t *testing.T, rec map[string]any)
	}{
		{"traceparent too short", map[string]string{"traceparent": "00-4bf92f35-00f067aa0ba902b7-01"}, "traceparent", newTrace},
		{"traceparent upper-case hex", map[string]string{"traceparent": strings.ToUpper(goodTP)}, "traceparent", newTrace},
		{"traceparent zero trace id", map[string]string{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, "traceparent", newTrace},
		{"traceparent version ff", map[string]string{"traceparent": "ff" + goodTP[2:]}, "traceparent", newTrace},
		{"traceparent oversized", map[string]string{"traceparent": goodTP + strings.Repeat("x", 10000)}, "traceparent", newTrace},
		{"traceparent with newline", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\x01"}, "traceparent", newTrace},
		{"baggage malformed", map[string]string{"baggage": "caller.service=a=b=;;,,=", "traceparent": goodTP}, "baggage", callerIs("")},
		{"baggage oversized", map[string]string{"baggage": "caller.service=x," + strings.Repeat("k=v,", 3000) + "z=1"}, "baggage", callerIs("")},
		{"caller with control characters", map[string]string{"baggage": "caller.service=evil%0A%7B%22status%22%3A200%7D"}, "caller", callerIs("")},
		{"caller oversized", map[string]string{"baggage": "caller.service=" + strings.Repeat("a", 200)}, "caller", callerIs("")},
		{"merchant with newline", map[string]string{"X-Merchant-Id": "m-1\n{\"status\":200}"}, "merchant_id", merchantIs("")},
		{"merchant with escape char", map[string]string{"X-Merchant-Id": "m-1\x1b[31mred"}, "merchant_id", merchantIs("")},
		{"merchant oversized", map[string]string{"X-Merchant-Id": strings.Repeat("m", 4096)}, "merchant_id", merchantIs("")},
		{"merchant invalid utf-8", map[string]string{"X-Merchant-Id": "m-\xff\xfe"}, "merchant_id", merchantIs("")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := &syncBuffer{}
			app := kit.NewWithConfig(testConfig(t, out))
			app.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
			before := droppedCount(t, app, tc.field)
			req := httptest.NewRequest("GET", "/v1/orders/1", nil)
			for k, v := range tc.headers {
				req.Header[http.CanonicalHeaderKey(k)] = []string{v}
			}
			rec := httptest.NewRecorder()
			app.Handler().ServeHTTP(rec, req)
			if rec.Code != 200 || rec.Body.String() != "ok" {
				t.Fatalf("request not served: %d %q", rec.Code, rec.Body.String())
			}
			if after := droppedCount(t, app, tc.field); after != before+1 {
				t.Errorf("kit_dropped_fields_total{field=%q} went %v -> %v, want +1", tc.field, before, after)
			}
			_ = app.Close(context.Background())
			acc := accessRecords(t, out.String())
			if len(acc) != 1 {
				t.Fatalf("want exactly one access record (no injected lines), got %d:\n%s", len(acc), out.String())
			}
			assertExactKeys(t, acc[0])
			if fmt.Sprint(acc[0]["status"]) != "200" {
				t.Errorf("status %v", acc[0]["status"])
			}
			tc.check(t, acc[0])
		})
	}
}

func newTrace(t *testing.T, rec map[string]any) {
	t.Helper()
	id := fmt.Sprint(rec["trace_id"])
	if !hex32.MatchString(id) || id == "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("malformed traceparent must start a new trace, got trace_id %q", id)
	}
}

func callerIs(want string) func(*testing.T, map[string]any) {
	return func(t *testing.T, rec map[string]any) {
		t.Helper()
		if rec["caller"] != want {
			t.Errorf("caller = %q, want %q", rec["caller"], want)
		}
	}
}

func merchantIs(want string) func(*testing.T, map[string]any) {
	return func(t *testing.T, rec map[string]any) {
		t.Helper()
		if rec["merchant_id"] != want {
			t.Errorf("merchant_id = %q, want %q", rec["merchant_id"], want)
		}
	}
}

// A value that is valid but full of JSON metacharacters is kept and escaped:
// it cannot end the record or forge a key.
func TestLogInjectionIsEscaped(t *testing.T) {
	out := &syncBuffer{}
	app := kit.NewWithConfig(testConfig(t, out))
	app.HandleFunc("GET /v1/x", func(w http.ResponseWriter, r *http.Request) {
		app.Logger().InfoContext(r.Context(), "hi\n{\"level\":\"ERROR\"}", "user", "bob\",\"admin\":true,\"x\":\"\u2028")
	})
	forged := `m","status":999,"route":"/admin`
	req := httptest.NewRequest("GET", "/v1/x", nil)
	req.Header.Set("X-Merchant-Id", forged)
	req.Header.Set("baggage", "caller.service=a%22%2C%22status%22%3A1%2C%22x%22%3A%22")
	app.Handler().ServeHTTP(httptest.NewRecorder(), req)
	_ = app.Close(context.Background())

	recs := lines(t, out.String())
	acc := accessRecords(t, out.String())
	if len(acc) != 1 || len(recs) != 2 {
		t.Fatalf("want one access and one app record, got %d lines:\n%s", len(recs), out.String())
	}
	assertExactKeys(t, acc[0])
	if acc[0]["merchant_id"] != forged || fmt.Sprint(acc[0]["status"]) != "200" || acc[0]["route"] != "/v1/x" {
		t.Errorf("forged fields leaked: %v", acc[0])
	}
	if acc[0]["caller"] != `a","status":1,"x":"` {
		t.Errorf("caller %q", acc[0]["caller"])
	}
	for _, r := range recs {
		if r["msg"] != nil {
			if r["level"] != "INFO" || r["user"] != "bob\",\"admin\":true,\"x\":\"\u2028" || r["admin"] != nil {
				t.Errorf("app record altered: %v", r)
			}
		}
	}
}
