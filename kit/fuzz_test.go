package kit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// FuzzAppendJSONString: every string encodes to one JSON string, on one
// line, that decodes to the input (invalid bytes become U+FFFD).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "line\nbreak\r\t", "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029", "日本語", `","k":"v`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		if bytes.ContainsAny(b, "\n\r") || bytes.Contains(b, []byte("\u2028")) {
			t.Fatalf("encoding of %q spans lines: %q", s, b)
		}
		for _, c := range b {
			if c < 0x20 {
				t.Fatalf("raw control byte in %q", b)
			}
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("encoding of %q is not a JSON string: %v (%q)", s, err, b)
		}
		if want := string([]rune(s)); got != want {
			t.Fatalf("round trip: got %q want %q", got, want)
		}
	})
}

// FuzzParseTraceparent checks the allocation-free parser against the
// OpenTelemetry propagator for version-00 headers.
func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"", "00-", "garbage",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		sc, ok := parseTraceparent(h)
		if ok && (!sc.TraceID().IsValid() || !sc.SpanID().IsValid() || !sc.IsRemote()) {
			t.Fatalf("accepted %q with invalid context %v", h, sc)
		}
		if !strings.HasPrefix(h, "00-") {
			return
		}
		carrier := propagation.HeaderCarrier(http.Header{"Traceparent": {h}})
		ref := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
		if ok != ref.IsValid() {
			t.Fatalf("%q: kit accepted=%v, OpenTelemetry accepted=%v", h, ok, ref.IsValid())
		}
		if ok && (sc.TraceID() != ref.TraceID() || sc.SpanID() != ref.SpanID() || sc.IsSampled() != ref.IsSampled()) {
			t.Fatalf("%q: kit %v, OpenTelemetry %v", h, sc, ref)
		}
	})
}

// FuzzRequestFields drives hostile header values through the whole stack:
// the request is served and the access log stays one record with exactly
// the documented keys.
func FuzzRequestFields(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "caller.service=checkout", "m-1")
	f.Add("00-zz", "caller.service=%0A%22", "m\n\"x\":1")
	f.Add("", "=;=,", "\x00\xff")
	keys := []string{"bytes", "caller", "cluster", "datacenter", "duration_ms", "merchant_id", "method", "route",
		"service", "span_id", "status", "time", "trace_id", "version"}
	f.Fuzz(func(t *testing.T, tp, bag, merchant string) {
		var out bytes.Buffer
		app := NewWithConfig(Config{Service: "svc", Output: &out, ExportDisabled: true})
		app.HandleFunc("GET /v1/x/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
		req := httptest.NewRequest("GET", "/v1/x/1", nil)
		req.Header["Traceparent"] = []string{tp}
		req.Header["Baggage"] = []string{bag}
		req.Header["X-Merchant-Id"] = []string{merchant}
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, req)
		_ = app.Close(context.Background())
		if rec.Code != 200 {
			t.Fatalf("not served: %d", rec.Code)
		}
		text := out.String()
		if strings.Count(text, "\n") != 1 {
			t.Fatalf("want one line, got %q", text)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			t.Fatalf("not JSON: %v: %q", err, text)
		}
		var got []string
		for k := range m {
			got = append(got, k)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(keys, ",") {
			t.Fatalf("keys %v", got)
		}
		if mid, _ := m["merchant_id"].(string); mid != "" && (mid != merchant || !utf8.ValidString(mid)) {
			t.Fatalf("merchant_id %q from %q", mid, merchant)
		}
		if m["status"] != float64(200) || m["route"] != "/v1/x/{id}" {
			t.Fatalf("record altered: %v", m)
		}
	})
}
