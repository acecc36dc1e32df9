package kit

import (
	"log/slog"
	"math"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes OTLP protobuf (ExportTraceServiceRequest and
// ExportLogsServiceRequest, opentelemetry-proto v1) straight into byte
// buffers. Building the generated message structs cost about twenty
// allocations per request; the encoder below reuses its scratch buffers and
// allocates only the body of each batch. Field numbers are those of
// opentelemetry/proto/{common,resource,trace,logs}/v1/*.proto; the tests
// decode the output with the generated types and with the Collector's pdata.

const scopeName = "github.com/pave-platform/pave/kit"

func resourceAttributes(cfg Config) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.String("service.name", cfg.Service),
		attribute.String("service.version", cfg.Version),
		attribute.String("telemetry.sdk.name", "pave-kit"),
		attribute.String("telemetry.sdk.language", "go"),
	}
	if cfg.Cluster != "" {
		attrs = append(attrs, attribute.String("pave.cluster", cfg.Cluster))
	}
	if cfg.Datacenter != "" {
		attrs = append(attrs, attribute.String("pave.datacenter", cfg.Datacenter))
	}
	return attrs
}

func serviceResource(cfg Config) *resource.Resource {
	return resource.NewSchemaless(resourceAttributes(cfg)...)
}

// otlpEncoder is owned by the exporter's batching goroutine.
type otlpEncoder struct {
	resource []byte // encoded Resource message
	scope    []byte
	rec      []byte
	sub      []byte
	any      []byte
	elem     []byte
	arr      []byte
	text     []byte
	scopes   []scopeBuf
}

type scopeBuf struct {
	name, version, schema string
	spans                 []byte
}

func newOTLPEncoder(cfg Config) *otlpEncoder {
	const scratch = 4096
	e := &otlpEncoder{
		scope: make([]byte, 0, 64<<10), rec: make([]byte, 0, scratch), sub: make([]byte, 0, scratch),
		any: make([]byte, 0, scratch), elem: make([]byte, 0, scratch), arr: make([]byte, 0, scratch), text: make([]byte, 0, scratch),
	}
	for _, kv := range resourceAttributes(cfg) {
		e.resource = e.appendAttr(e.resource, 1, kv)
	}
	return e
}

func appendMsg(b []byte, field protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendStr(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendFixed64(b []byte, field protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, field, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendVarintField(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// AnyValue: 1 string, 2 bool, 3 int, 4 double, 5 array.
func appendAnyString(b []byte, s string) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendAnyBytesAsString(b []byte, s []byte) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, s)
}

func appendAnyBool(b []byte, v bool) []byte {
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeBool(v))
}

func appendAnyInt(b []byte, v int64) []byte {
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendAnyDouble(b []byte, f float64) []byte {
	b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(f))
}

// appendKV appends a KeyValue (1 key, 2 AnyValue) as field.
func appendKV(b []byte, field protowire.Number, key string, anyv []byte) []byte {
	size := 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(len(anyv))
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, anyv)
}

func (e *otlpEncoder) appendAttr(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	e.any = e.attrValue(e.any[:0], kv.Value)
	return appendKV(b, field, string(kv.Key), e.any)
}

func (e *otlpEncoder) attrValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		return appendAnyBool(b, v.AsBool())
	case attribute.INT64:
		return appendAnyInt(b, v.AsInt64())
	case attribute.FLOAT64:
		return appendAnyDouble(b, v.AsFloat64())
	case attribute.STRING:
		return appendAnyString(b, v.AsString())
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
		e.arr = e.arr[:0]
		add := func(elem []byte) { e.arr = appendMsg(e.arr, 1, elem) }
		switch v.Type() {
		case attribute.BOOLSLICE:
			for _, x := range v.AsBoolSlice() {
				e.elem = appendAnyBool(e.elem[:0], x)
				add(e.elem)
			}
		case attribute.INT64SLICE:
			for _, x := range v.AsInt64Slice() {
				e.elem = appendAnyInt(e.elem[:0], x)
				add(e.elem)
			}
		case attribute.FLOAT64SLICE:
			for _, x := range v.AsFloat64Slice() {
				e.elem = appendAnyDouble(e.elem[:0], x)
				add(e.elem)
			}
		default:
			for _, x := range v.AsStringSlice() {
				e.elem = appendAnyString(e.elem[:0], x)
				add(e.elem)
			}
		}
		return appendMsg(b, 5, e.arr)
	}
	return appendAnyString(b, v.Emit())
}

// wrapRequest builds the request body: field 1 holds one Resource{Spans,Logs}
// whose field 1 is the resource and field 2 the scope blocks.
func (e *otlpEncoder) wrapRequest(scopes [][]byte) []byte {
	inner := 1 + protowire.SizeBytes(len(e.resource))
	for _, s := range scopes {
		inner += 1 + protowire.SizeBytes(len(s))
	}
	body := make([]byte, 0, 1+protowire.SizeVarint(uint64(inner))+inner)
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendVarint(body, uint64(inner))
	body = appendMsg(body, 1, e.resource)
	for _, s := range scopes {
		body = appendMsg(body, 2, s)
	}
	return body
}

// appendScope appends InstrumentationScope (1 name, 2 version) as field 1.
func appendScope(b []byte, name, version string) []byte {
	size := 0
	if name != "" {
		size += 1 + protowire.SizeBytes(len(name))
	}
	if version != "" {
		size += 1 + protowire.SizeBytes(len(version))
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = appendStr(b, 1, name)
	return appendStr(b, 2, version)
}

// encodeSpans returns an ExportTraceServiceRequest body.
func (e *otlpEncoder) encodeSpans(spans []sdktrace.ReadOnlySpan) []byte {
	for i := range e.scopes {
		e.scopes[i].spans = e.scopes[i].spans[:0]
	}
	used := e.scopes[:0]
	for _, s := range spans {
		sc := s.InstrumentationScope()
		idx := -1
		for i := range used {
			if used[i].name == sc.Name && used[i].version == sc.Version && used[i].schema == sc.SchemaURL {
				idx = i
				break
			}
		}
		if idx < 0 {
			if len(used) < cap(used) {
				used = used[:len(used)+1]
				used[len(used)-1].name, used[len(used)-1].version, used[len(used)-1].schema = sc.Name, sc.Version, sc.SchemaURL
				used[len(used)-1].spans = appendScope(used[len(used)-1].spans[:0], sc.Name, sc.Version)
			} else {
				used = append(used, scopeBuf{name: sc.Name, version: sc.Version, schema: sc.SchemaURL, spans: appendScope(nil, sc.Name, sc.Version)})
			}
			idx = len(used) - 1
		}
		e.rec = e.spanProto(e.rec[:0], s)
		used[idx].spans = appendMsg(used[idx].spans, 2, e.rec)
	}
	e.scopes = used
	blocks := make([][]byte, len(used))
	for i := range used {
		b := used[i].spans
		if used[i].schema != "" {
			b = appendStr(b, 3, used[i].schema)
			used[i].spans = b
		}
		blocks[i] = b
	}
	return e.wrapRequest(blocks)
}

// Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name,
// 6 kind, 7 start, 8 end, 9 attributes, 10 dropped attrs, 11 events,
// 12 dropped events, 13 links, 14 dropped links, 15 status, 16 flags.
func (e *otlpEncoder) spanProto(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendMsg(b, 1, tid[:])
	b = appendMsg(b, 2, sid[:])
	b = appendStr(b, 3, sc.TraceState().String())
	flags := uint32(sc.TraceFlags()) | 0x100 // bit 8: the remote bit below is known
	if parent := s.Parent(); parent.IsValid() {
		psid := parent.SpanID()
		b = appendMsg(b, 4, psid[:])
		if parent.IsRemote() {
			flags |= 0x200
		}
	}
	b = appendStr(b, 5, s.Name())
	b = appendVarintField(b, 6, uint64(s.SpanKind()))
	b = appendFixed64(b, 7, uint64(s.StartTime().UnixNano()))
	b = appendFixed64(b, 8, uint64(s.EndTime().UnixNano()))
	for _, kv := range s.Attributes() {
		b = e.appendAttr(b, 9, kv)
	}
	b = appendVarintField(b, 10, uint64(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		e.sub = appendFixed64(e.sub[:0], 1, uint64(ev.Time.UnixNano()))
		e.sub = appendStr(e.sub, 2, ev.Name)
		for _, kv := range ev.Attributes {
			e.sub = e.appendAttr(e.sub, 3, kv)
		}
		e.sub = appendVarintField(e.sub, 4, uint64(ev.DroppedAttributeCount))
		b = appendMsg(b, 11, e.sub)
	}
	b = appendVarintField(b, 12, uint64(s.DroppedEvents()))
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		e.sub = appendMsg(e.sub[:0], 1, ltid[:])
		e.sub = appendMsg(e.sub, 2, lsid[:])
		e.sub = appendStr(e.sub, 3, l.SpanContext.TraceState().String())
		for _, kv := range l.Attributes {
			e.sub = e.appendAttr(e.sub, 4, kv)
		}
		e.sub = appendVarintField(e.sub, 5, uint64(l.DroppedAttributeCount))
		b = appendMsg(b, 13, e.sub)
	}
	b = appendVarintField(b, 14, uint64(s.DroppedLinks()))
	// Status: 2 message, 3 code (1 ok, 2 error).
	switch st := s.Status(); st.Code {
	case codes.Error:
		e.sub = appendStr(e.sub[:0], 2, st.Description)
		e.sub = appendVarintField(e.sub, 3, 2)
		b = appendMsg(b, 15, e.sub)
	case codes.Ok:
		e.sub = appendVarintField(e.sub[:0], 3, 1)
		b = appendMsg(b, 15, e.sub)
	}
	b = protowire.AppendTag(b, 16, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, flags)
}

// encodeLogs returns an ExportLogsServiceRequest body.
func (e *otlpEncoder) encodeLogs(recs []logRecord) []byte {
	e.scope = appendScope(e.scope[:0], scopeName, "")
	for i := range recs {
		e.rec = e.logProto(e.rec[:0], &recs[i])
		e.scope = appendMsg(e.scope, 2, e.rec)
	}
	return e.wrapRequest([][]byte{e.scope})
}

// severity maps slog levels onto OTLP severity numbers: DEBUG=5, INFO=9,
// WARN=13, ERROR=17, with levels in between landing in between.
func severity(l slog.Level) uint64 {
	n := 9 + int(l)
	return uint64(min(max(n, 1), 24))
}

// LogRecord: 1 time, 2 severity_number, 3 severity_text, 5 body,
// 6 attributes, 8 flags, 9 trace_id, 10 span_id, 11 observed_time.
func (e *otlpEncoder) logProto(b []byte, r *logRecord) []byte {
	ts := uint64(r.time.UnixNano())
	b = appendFixed64(b, 1, ts)
	b = appendVarintField(b, 2, severity(r.level))
	b = appendStr(b, 3, r.level.String())
	if r.isAccess {
		a := &r.access
		e.text = append(e.text[:0], a.method...)
		e.text = append(e.text, ' ')
		e.text = append(e.text, a.route...)
		e.text = append(e.text, ' ')
		e.text = strconv.AppendInt(e.text, int64(a.status), 10)
		e.any = appendAnyBytesAsString(e.any[:0], e.text)
		b = appendMsg(b, 5, e.any)
		b = appendKV(b, 6, "log.kind", appendAnyString(e.any[:0], "access"))
		b = appendKV(b, 6, "method", appendAnyString(e.any[:0], a.method))
		b = appendKV(b, 6, "route", appendAnyString(e.any[:0], a.route))
		b = appendKV(b, 6, "status", appendAnyInt(e.any[:0], int64(a.status)))
		b = appendKV(b, 6, "duration_ms", appendAnyDouble(e.any[:0], float64(a.duration.Nanoseconds())/1e6))
		b = appendKV(b, 6, "bytes", appendAnyInt(e.any[:0], a.bytes))
		b = appendKV(b, 6, "caller", appendAnyString(e.any[:0], a.caller))
		b = appendKV(b, 6, "merchant_id", appendAnyString(e.any[:0], a.merchant))
	} else {
		b = appendMsg(b, 5, appendAnyString(e.any[:0], r.msg))
		b = appendKV(b, 6, "log.kind", appendAnyString(e.any[:0], "app"))
		for _, a := range r.attrs {
			b = appendKV(b, 6, a.key, e.slogValue(e.any[:0], a.value))
		}
	}
	if r.traceID.IsValid() {
		b = protowire.AppendTag(b, 8, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, uint32(r.flags))
		b = appendMsg(b, 9, r.traceID[:])
		b = appendMsg(b, 10, r.spanID[:])
	}
	return appendFixed64(b, 11, ts)
}

func (e *otlpEncoder) slogValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendAnyString(b, v.String())
	case slog.KindInt64:
		return appendAnyInt(b, v.Int64())
	case slog.KindUint64:
		return appendAnyInt(b, int64(v.Uint64()))
	case slog.KindFloat64:
		return appendAnyDouble(b, v.Float64())
	case slog.KindBool:
		return appendAnyBool(b, v.Bool())
	}
	e.text = appendValueText(e.text[:0], v)
	return appendAnyBytesAsString(b, e.text)
}

// appendValueText renders durations, times and arbitrary values as they
// appear on stdout, without JSON quotes around plain text.
func appendValueText(b []byte, v slog.Value) []byte {
	if v.Kind() == slog.KindAny {
		if err, ok := v.Any().(error); ok {
			return append(b, err.Error()...)
		}
		return appendJSONValue(b, v)
	}
	return append(b, v.String()...)
}
