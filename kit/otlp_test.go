package kit

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The hand-written encoder is checked against the generated OTLP types.

func attrMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

func TestEncodeLogsDecodesWithGeneratedTypes(t *testing.T) {
	cfg := Config{Service: "orders", Version: "v2", Cluster: "kr-1", Datacenter: "dc-b"}
	enc := newOTLPEncoder(cfg)
	now := time.Unix(1700000000, 123456789)
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid := trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	recs := []logRecord{
		{time: now, level: slog.LevelInfo, traceID: tid, spanID: sid, flags: 1, isAccess: true,
			access: accessFields{method: "GET", route: "/v1/x/{id}", status: 503, duration: 1500 * time.Microsecond, bytes: 77, caller: "web", merchant: "m-1"}},
		{time: now, level: slog.LevelWarn, msg: "héllo \"world\"", attrs: []logAttr{
			{"s", slog.StringValue("str")}, {"i", slog.IntValue(-5)}, {"u", slog.Uint64Value(9)},
			{"f", slog.Float64Value(2.5)}, {"b", slog.BoolValue(true)}, {"d", slog.DurationValue(time.Second)},
			{"err", slog.AnyValue(errors.New("boom"))}, {"any", slog.AnyValue(map[string]int{"a": 1})},
		}},
	}
	// Encode twice: the second run reuses the scratch buffers.
	_ = enc.encodeLogs(recs)
	body := enc.encodeLogs(recs)
	var got logspb.LogsData
	if err := proto.Unmarshal(body, &got); err != nil {
		t.Fatalf("body does not decode as OTLP logs: %v", err)
	}
	if len(got.ResourceLogs) != 1 || len(got.ResourceLogs[0].ScopeLogs) != 1 {
		t.Fatalf("shape: %v", &got)
	}
	res := attrMap(got.ResourceLogs[0].Resource.Attributes)
	if res["service.name"].GetStringValue() != "orders" || res["service.version"].GetStringValue() != "v2" ||
		res["pave.cluster"].GetStringValue() != "kr-1" || res["pave.datacenter"].GetStringValue() != "dc-b" {
		t.Errorf("resource %v", res)
	}
	sl := got.ResourceLogs[0].ScopeLogs[0]
	if sl.Scope.GetName() != scopeName || len(sl.LogRecords) != 2 {
		t.Fatalf("scope %v, %d records", sl.Scope, len(sl.LogRecords))
	}
	a := sl.LogRecords[0]
	if a.TimeUnixNano != uint64(now.UnixNano()) || a.ObservedTimeUnixNano != uint64(now.UnixNano()) ||
		a.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_INFO || a.SeverityText != "INFO" ||
		string(a.TraceId) != string(tid[:]) || string(a.SpanId) != string(sid[:]) || a.Flags != 1 ||
		a.Body.GetStringValue() != "GET /v1/x/{id} 503" {
		t.Errorf("access record %v", a)
	}
	am := attrMap(a.Attributes)
	if am["log.kind"].GetStringValue() != "access" || am["status"].GetIntValue() != 503 || am["bytes"].GetIntValue() != 77 ||
		am["duration_ms"].GetDoubleValue() != 1.5 || am["caller"].GetStringValue() != "web" || am["merchant_id"].GetStringValue() != "m-1" ||
		am["route"].GetStringValue() != "/v1/x/{id}" || am["method"].GetStringValue() != "GET" {
		t.Errorf("access attributes %v", am)
	}
	l := sl.LogRecords[1]
	if l.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_WARN || l.Body.GetStringValue() != "héllo \"world\"" || len(l.TraceId) != 0 {
		t.Errorf("app record %v", l)
	}
	lm := attrMap(l.Attributes)
	if lm["s"].GetStringValue() != "str" || lm["i"].GetIntValue() != -5 || lm["u"].GetIntValue() != 9 || lm["f"].GetDoubleValue() != 2.5 ||
		!lm["b"].GetBoolValue() || lm["d"].GetStringValue() != "1s" || lm["err"].GetStringValue() != "boom" || lm["any"].GetStringValue() != `{"a":1}` {
		t.Errorf("app attributes %v", lm)
	}
}

func TestEncodeSpansDecodesWithGeneratedTypes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 1}, SpanID: trace.SpanID{0xbb, 2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	link := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xcc, 3}, SpanID: trace.SpanID{0xdd, 4}})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	_, s := tp.Tracer("a", trace.WithInstrumentationVersion("1.0")).Start(ctx, "GET /v1/x/{id}",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithLinks(trace.Link{SpanContext: link, Attributes: []attribute.KeyValue{attribute.String("why", "retry")}}))
	s.SetAttributes(attribute.String("s", "v"), attribute.Int("i", 7), attribute.Float64("f", 0.25), attribute.Bool("b", true),
		attribute.StringSlice("ss", []string{"x", "y"}), attribute.Int64Slice("is", []int64{1, 2, 3}))
	s.AddEvent("ev", trace.WithAttributes(attribute.Int("n", 1)))
	s.SetStatus(codes.Error, "bad")
	s.End()
	_, s2 := tp.Tracer("b").Start(context.Background(), "inner")
	s2.End()

	enc := newOTLPEncoder(Config{Service: "svc", Version: "v"})
	body := enc.encodeSpans(rec.Ended())
	body = enc.encodeSpans(rec.Ended()) // reuse of scratch buffers
	var got tracepb.TracesData
	if err := proto.Unmarshal(body, &got); err != nil {
		t.Fatalf("body does not decode as OTLP traces: %v", err)
	}
	ss := got.ResourceSpans[0].ScopeSpans
	if len(ss) != 2 || ss[0].Scope.GetName() != "a" || ss[0].Scope.GetVersion() != "1.0" || ss[1].Scope.GetName() != "b" {
		t.Fatalf("scopes %v", ss)
	}
	p := ss[0].Spans[0]
	sc := rec.Ended()[0].SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	if string(p.TraceId) != string(tid[:]) || string(p.SpanId) != string(sid[:]) || p.Name != "GET /v1/x/{id}" ||
		p.Kind != tracepb.Span_SPAN_KIND_SERVER || p.Flags != 0x301 {
		t.Errorf("span ids/name/kind/flags %v", p)
	}
	psid := parent.SpanID()
	if string(p.ParentSpanId) != string(psid[:]) || p.StartTimeUnixNano == 0 || p.EndTimeUnixNano < p.StartTimeUnixNano {
		t.Errorf("parent/time %v", p)
	}
	m := attrMap(p.Attributes)
	if m["s"].GetStringValue() != "v" || m["i"].GetIntValue() != 7 || m["f"].GetDoubleValue() != 0.25 || !m["b"].GetBoolValue() ||
		len(m["ss"].GetArrayValue().GetValues()) != 2 || m["ss"].GetArrayValue().Values[1].GetStringValue() != "y" ||
		m["is"].GetArrayValue().Values[2].GetIntValue() != 3 {
		t.Errorf("attributes %v", m)
	}
	if len(p.Events) != 1 || p.Events[0].Name != "ev" || p.Events[0].Attributes[0].Value.GetIntValue() != 1 {
		t.Errorf("events %v", p.Events)
	}
	ltid := link.TraceID()
	if len(p.Links) != 1 || string(p.Links[0].TraceId) != string(ltid[:]) || p.Links[0].Attributes[0].Value.GetStringValue() != "retry" {
		t.Errorf("links %v", p.Links)
	}
	if p.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || p.Status.GetMessage() != "bad" {
		t.Errorf("status %v", p.Status)
	}
	if ss[1].Spans[0].Name != "inner" || len(ss[1].Spans[0].ParentSpanId) != 0 {
		t.Errorf("second scope span %v", ss[1].Spans[0])
	}
}
