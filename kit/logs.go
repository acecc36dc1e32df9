package kit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
)

const (
	levelInfo  = slog.LevelInfo
	levelError = slog.LevelError
)

// logRecord is one log record on its way to the OTLP exporter. Access-log
// records carry their fields by value so the request path does not build
// an attribute slice.
type logRecord struct {
	time     time.Time
	level    slog.Level
	msg      string
	traceID  trace.TraceID
	spanID   trace.SpanID
	flags    byte
	attrs    []logAttr
	access   accessFields
	isAccess bool
}

type accessFields struct {
	method, route, caller, merchant string
	status                          int
	duration                        time.Duration
	bytes                           int64
}

// logAttr is a flattened slog attribute: groups become dotted keys.
type logAttr struct {
	key   string
	value slog.Value
}

// logHandler writes application logs as one JSON object per line, with
// trace_id and span_id taken from the context, and hands each record to
// the exporter. Groups are flattened into dotted keys ("db.query") so the
// same keys appear on stdout and in OTLP attributes.
type logHandler struct {
	out    *lineWriter
	exp    *exporter
	level  slog.Leveler
	prefix []byte // `,"service":…,"version":…` pre-escaped
	attrs  []logAttr
	group  string
}

func newLogHandler(out *lineWriter, exp *exporter, cfg Config) *logHandler {
	b := []byte(`,"service":`)
	b = appendJSONString(b, cfg.Service)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, cfg.Version)
	return &logHandler{out: out, exp: exp, level: cfg.LogLevel, prefix: b}
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = appendFlat(append([]logAttr(nil), h.attrs...), h.group, as)
	return &h2
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

func appendFlat(dst []logAttr, prefix string, as []slog.Attr) []logAttr {
	for _, a := range as {
		v := a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			continue
		}
		if v.Kind() == slog.KindGroup {
			p := prefix
			if a.Key != "" {
				p = prefix + a.Key + "."
			}
			dst = appendFlat(dst, p, v.Group())
			continue
		}
		dst = append(dst, logAttr{key: prefix + a.Key, value: v})
	}
	return dst
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	attrs := make([]logAttr, 0, len(h.attrs)+r.NumAttrs())
	attrs = append(attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = appendFlat(attrs, h.group, []slog.Attr{a})
		return true
	})
	sc := trace.SpanContextFromContext(ctx)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}

	b := make([]byte, 0, 256)
	b = append(b, `{"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":`...)
	b = appendJSONString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = appendJSONString(b, r.Message)
	if sc.IsValid() {
		b = append(b, `,"trace_id":"`...)
		b = appendHexID(b, sc.TraceID())
		b = append(b, `","span_id":"`...)
		b = appendHexSpan(b, sc.SpanID())
		b = append(b, '"')
	}
	b = append(b, h.prefix...)
	for _, a := range attrs {
		b = append(b, ',')
		b = appendJSONString(b, a.key)
		b = append(b, ':')
		b = appendJSONValue(b, a.value)
	}
	b = append(b, "}\n"...)
	_, err := h.out.Write(b)

	h.exp.enqueueLog(logRecord{
		time: t, level: r.Level, msg: r.Message,
		traceID: sc.TraceID(), spanID: sc.SpanID(), flags: byte(sc.TraceFlags()),
		attrs: attrs,
	})
	return err
}

func appendJSONValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if f != f || f > 1e308 || f < -1e308 { // NaN and ±Inf are not JSON
			return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendJSONString(b, v.Duration().String())
	case slog.KindTime:
		return appendJSONString(b, v.Time().UTC().Format(time.RFC3339Nano))
	case slog.KindAny:
		a := v.Any()
		if err, ok := a.(error); ok {
			return appendJSONString(b, err.Error())
		}
		if js, err := json.Marshal(a); err == nil {
			// json.Marshal escapes control characters and, by default, <>&
			// and U+2028/9, so the value cannot break the line.
			return append(b, js...)
		}
		return appendJSONString(b, fmt.Sprint(a))
	}
	return appendJSONString(b, v.String())
}
