package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// plainResult is telemetry.Result encoded by reflection alone.
type plainLog telemetry.Log

type plainResult struct {
	Logs     []plainLog `json:"logs"`
	Next     string     `json:"next,omitempty"`
	Warnings []string   `json:"warnings,omitempty"`
}

// TestPageIsWhatEncodingJSONWrites: a page written line by line with
// Log.AppendJSON is byte for byte the indented encoding/json answer it
// replaced, for empty, nil and full pages, with and without a cursor and
// warnings.
func TestPageIsWhatEncodingJSONWrites(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 0, 123456789, time.UTC)
	full := []telemetry.Log{
		{Time: now, Service: "orders", Level: "ERROR", Message: `psp "refused" <x> & more`, Status: 502, DurationMS: 40.5, Attrs: telemetry.Attrs{{Key: "psp", Value: "acme"}, {Key: "attempt", Value: "2"}}},
		{Time: now.Add(-time.Second), Service: "payments", Level: "INFO", Message: "héllo", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Bytes: 12},
	}
	for _, res := range []telemetry.Result{
		{}, {Logs: []telemetry.Log{}}, {Logs: full}, {Logs: full[:1], Next: "abc=", Warnings: []string{"block x: corrupt", "<y>"}},
	} {
		rec := httptest.NewRecorder()
		writeLogs(rec, res)
		pr := plainResult{Next: res.Next, Warnings: res.Warnings}
		if res.Logs != nil {
			pr.Logs = []plainLog{}
		}
		for _, l := range res.Logs {
			pr.Logs = append(pr.Logs, plainLog(l))
		}
		want := httptest.NewRecorder()
		writeJSON(want, 200, pr)
		if !bytes.Equal(rec.Body.Bytes(), want.Body.Bytes()) || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%+v:\n got %s\nwant %s", res, rec.Body.Bytes(), want.Body.Bytes())
		}
		var back telemetry.Result
		if err := json.Unmarshal(rec.Body.Bytes(), &back); err != nil || len(back.Logs) != len(res.Logs) {
			t.Errorf("%+v: reads back as %d lines, %v", res, len(back.Logs), err)
		}
	}
}

type plainTrace struct {
	TraceID  string           `json:"trace_id"`
	Spans    []telemetry.Span `json:"spans"`
	Logs     []plainLog       `json:"logs"`
	Warnings []string         `json:"warnings,omitempty"`
}

// TestTraceIsWhatEncodingJSONWrites: a trace written with Log.AppendJSON
// is byte for byte the indented encoding/json answer it replaced, with
// and without spans, lines and warnings.
func TestTraceIsWhatEncodingJSONWrites(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 0, 123456789, time.UTC)
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	logs := []telemetry.Log{
		{Time: now, Service: "orders", Level: "ERROR", Message: `psp "refused" <x> & more`, TraceID: id, Status: 502, DurationMS: 40.5, Attrs: telemetry.Attrs{{Key: "psp", Value: "acme"}}},
		{Time: now.Add(time.Second), Service: "payments", Level: "INFO", Message: "héllo", TraceID: id, Bytes: 12},
	}
	spans := []telemetry.Span{
		{TraceID: id, SpanID: "00f067aa0ba902b7", Service: "orders", Name: "POST /orders <new>", Start: now, End: now.Add(40 * time.Millisecond), Status: "error", Attrs: telemetry.Attrs{{Key: "http.route", Value: "/orders"}}},
		{TraceID: id, SpanID: "00f067aa0ba902b8", ParentID: "00f067aa0ba902b7", Service: "payments", Name: "charge", Start: now.Add(time.Millisecond), End: now.Add(2 * time.Millisecond)},
	}
	for _, res := range []telemetry.TraceResult{
		{TraceID: id, Spans: []telemetry.Span{}, Logs: []telemetry.Log{}},
		{TraceID: id, Spans: spans, Logs: []telemetry.Log{}},
		{TraceID: id, Spans: []telemetry.Span{}, Logs: logs},
		{TraceID: id, Spans: spans[:1], Logs: logs, Warnings: []string{"block x: corrupt", "<y>"}},
		{TraceID: id},
	} {
		rec := httptest.NewRecorder()
		writeTrace(rec, res)
		pt := plainTrace{TraceID: res.TraceID, Spans: res.Spans, Warnings: res.Warnings}
		if res.Logs != nil {
			pt.Logs = []plainLog{}
		}
		for _, l := range res.Logs {
			pt.Logs = append(pt.Logs, plainLog(l))
		}
		want := httptest.NewRecorder()
		writeJSON(want, 200, pt)
		if !bytes.Equal(rec.Body.Bytes(), want.Body.Bytes()) || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%+v:\n got %s\nwant %s", res, rec.Body.Bytes(), want.Body.Bytes())
		}
		var back telemetry.TraceResult
		if err := json.Unmarshal(rec.Body.Bytes(), &back); err != nil || len(back.Logs) != len(res.Logs) || len(back.Spans) != len(res.Spans) {
			t.Errorf("%+v: reads back as %d lines and %d spans, %v", res, len(back.Logs), len(back.Spans), err)
		}
	}
}
