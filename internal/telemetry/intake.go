package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Limits bound what one intake request may carry.
type Limits struct {
	MaxBodyBytes int // after gzip decompression (default 16 MiB)
	MaxAttrs     int // attributes per record, resource included (default 128)
	MaxValueLen  int // bytes in one attribute value or message (default 64 KiB)
}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 16 << 20
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = 128
	}
	if l.MaxValueLen <= 0 {
		l.MaxValueLen = 64 << 10
	}
	return l
}

// Intake serves the OTLP/HTTP listener: POST /v1/logs and /v1/traces
// (protobuf or JSON, optionally gzip), and POST /v1/jsonlines (one JSON
// object per line; also at /insert/jsonline, the path VictoriaLogs
// shippers use). It answers 200 only after the records are durable.
type Intake struct {
	store  Store
	limits Limits
	log    *slog.Logger
	mux    *http.ServeMux
	now    func() time.Time
}

// NewIntake returns the OTLP/HTTP handler writing into store.
func NewIntake(store Store, lim Limits, log *slog.Logger) *Intake {
	if log == nil {
		log = slog.Default()
	}
	in := &Intake{store: store, limits: lim.withDefaults(), log: log, mux: http.NewServeMux(), now: time.Now}
	in.mux.HandleFunc("POST /v1/logs", in.logs)
	in.mux.HandleFunc("POST /v1/traces", in.traces)
	in.mux.HandleFunc("POST /v1/jsonlines", in.jsonLines)
	in.mux.HandleFunc("POST /insert/jsonline", in.jsonLines)
	return in
}

func (in *Intake) ServeHTTP(w http.ResponseWriter, r *http.Request) { in.mux.ServeHTTP(w, r) }

// intakeError carries the HTTP status of a rejection.
type intakeError struct {
	status int
	msg    string
}

func (e *intakeError) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &intakeError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

func (in *Intake) body(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(io.LimitReader(r.Body, int64(in.limits.MaxBodyBytes)+1))
		if err != nil {
			return nil, badRequest("Content-Encoding gzip: %v", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, &intakeError{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported; send identity or gzip", enc)}
	}
	// Sized from Content-Length when it is known (and within the limit):
	// io.ReadAll alone grows a large batch's buffer a dozen times.
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && rd == r.Body && n <= int64(in.limits.MaxBodyBytes) {
		buf.Grow(int(n) + bytes.MinRead) // ReadFrom then meets EOF without growing
	}
	if _, err := buf.ReadFrom(io.LimitReader(rd, int64(in.limits.MaxBodyBytes)+1)); err != nil {
		return nil, badRequest("reading body: %v", err)
	}
	b := buf.Bytes()
	if len(b) > in.limits.MaxBodyBytes {
		return nil, &intakeError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes (after decompression); send smaller batches", in.limits.MaxBodyBytes)}
	}
	return b, nil
}

func isJSON(r *http.Request) (bool, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-protobuf", "application/protobuf":
		return false, nil
	case "application/json":
		return true, nil
	}
	return false, &intakeError{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not supported; send application/x-protobuf or application/json", ct)}
}

// Back-pressure hints, the same over HTTP (Retry-After) and gRPC (RetryInfo).
const (
	busyRetryAfter        = time.Second
	unavailableRetryAfter = 5 * time.Second
)

// classify maps an intake or store error to its HTTP status and, for
// back-pressure, how long the sender should wait before retrying. The gRPC
// intake derives its status codes from the same answer, so both transports
// refuse the same requests for the same reasons.
func classify(err error) (status int, retryAfter time.Duration) {
	var ie *intakeError
	switch {
	case errors.As(err, &ie):
		return ie.status, 0
	case errors.Is(err, ErrBusy):
		return http.StatusTooManyRequests, busyRetryAfter
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, unavailableRetryAfter
	}
	return http.StatusInternalServerError, 0
}

func (in *Intake) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, retry := classify(err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	}
	if status >= 500 {
		in.log.Error("telemetry intake refused a request", "path", r.URL.Path, "status", status, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, err.Error())
}

// busy refuses a batch before it is decoded when the store would refuse it
// anyway: under back-pressure the senders' retries then cost the store
// almost nothing.
func (in *Intake) busy() error {
	if b, ok := in.store.(interface{ Busy() bool }); ok && b.Busy() {
		return ErrBusy
	}
	return nil
}

// exportLogs is the one path of an OTLP logs request, over HTTP or gRPC:
// decode, check the limits, append. It returns once the records are
// durable, or with an error for which nothing was stored.
func (in *Intake) exportLogs(ctx context.Context, body []byte, asJSON bool) error {
	if err := in.busy(); err != nil {
		return err
	}
	logs, err := DecodeOTLPLogs(body, asJSON, in.limits, in.now())
	if err != nil {
		return err
	}
	return in.store.AppendLogs(ctx, logs)
}

// exportTraces is exportLogs for spans.
func (in *Intake) exportTraces(ctx context.Context, body []byte, asJSON bool) error {
	if err := in.busy(); err != nil {
		return err
	}
	spans, err := DecodeOTLPTraces(body, asJSON, in.limits)
	if err != nil {
		return err
	}
	return in.store.AppendSpans(ctx, spans)
}

func (in *Intake) logs(w http.ResponseWriter, r *http.Request) {
	asJSON, err := isJSON(r)
	if err != nil {
		in.fail(w, r, err)
		return
	}
	b, err := in.body(r)
	if err != nil {
		in.fail(w, r, err)
		return
	}
	if err := in.exportLogs(r.Context(), b, asJSON); err != nil {
		in.fail(w, r, err)
		return
	}
	writeOTLPOK(w, asJSON, plogotlp.NewExportResponse().MarshalProto, plogotlp.NewExportResponse().MarshalJSON)
}

func (in *Intake) traces(w http.ResponseWriter, r *http.Request) {
	asJSON, err := isJSON(r)
	if err != nil {
		in.fail(w, r, err)
		return
	}
	b, err := in.body(r)
	if err != nil {
		in.fail(w, r, err)
		return
	}
	if err := in.exportTraces(r.Context(), b, asJSON); err != nil {
		in.fail(w, r, err)
		return
	}
	writeOTLPOK(w, asJSON, ptraceotlp.NewExportResponse().MarshalProto, ptraceotlp.NewExportResponse().MarshalJSON)
}

func writeOTLPOK(w http.ResponseWriter, asJSON bool, proto, js func() ([]byte, error)) {
	var b []byte
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		b, _ = js()
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ = proto()
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (in *Intake) jsonLines(w http.ResponseWriter, r *http.Request) {
	b, err := in.body(r)
	if err == nil {
		err = in.busy()
	}
	if err != nil {
		in.fail(w, r, err)
		return
	}
	logs, err := DecodeJSONLines(b, r.URL.Query().Get("service"), in.limits, in.now())
	if err != nil {
		in.fail(w, r, err)
		return
	}
	if err := in.store.AppendLogs(r.Context(), logs); err != nil {
		in.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"accepted\":%d}\n", len(logs))
}

func traceHex(id pcommon.TraceID) string {
	if id.IsEmpty() {
		return ""
	}
	return hex.EncodeToString(id[:])
}

func spanHex(id pcommon.SpanID) string {
	if id.IsEmpty() {
		return ""
	}
	return hex.EncodeToString(id[:])
}

type resourceInfo struct {
	service, version, cluster, datacenter string
	attrs                                 Attrs
}

func readResource(attrs pcommon.Map, lim Limits, where string) (resourceInfo, error) {
	var ri resourceInfo
	if attrs.Len() > lim.MaxAttrs {
		return ri, badRequest("%s.resource: %d attributes exceed the limit of %d", where, attrs.Len(), lim.MaxAttrs)
	}
	var err error
	attrs.Range(func(k string, v pcommon.Value) bool {
		s := v.AsString()
		if len(s) > lim.MaxValueLen {
			err = badRequest("%s.resource attribute %q: value of %d bytes exceeds %d", where, k, len(s), lim.MaxValueLen)
			return false
		}
		switch k {
		case "service.name":
			ri.service = s
		case "service.version":
			ri.version = s
		case "pave.cluster":
			ri.cluster = s
		case "pave.datacenter":
			ri.datacenter = s
		case "telemetry.sdk.name", "telemetry.sdk.language", "telemetry.sdk.version":
		default:
			ri.attrs.Set(k, s)
		}
		return true
	})
	if ri.service == "" {
		ri.service = "unknown_service"
	}
	return ri, err
}

// DecodeOTLPLogs turns an ExportLogsServiceRequest into log lines, checking
// the limits; errors name the record that broke them.
func DecodeOTLPLogs(body []byte, asJSON bool, lim Limits, now time.Time) ([]Log, error) {
	lim = lim.withDefaults()
	req := plogotlp.NewExportRequest()
	var err error
	if asJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		return nil, badRequest("not an OTLP ExportLogsServiceRequest: %v", err)
	}
	ld := req.Logs()
	out := make([]Log, 0, ld.LogRecordCount())
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		where := fmt.Sprintf("resourceLogs[%d]", i)
		ri, err := readResource(rl.Resource().Attributes(), lim, where)
		if err != nil {
			return nil, err
		}
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				l, err := convertLog(lrs.At(k), ri, lim, fmt.Sprintf("%s.scopeLogs[%d].logRecords[%d]", where, j, k), now)
				if err != nil {
					return nil, err
				}
				out = append(out, l)
			}
		}
	}
	return out, nil
}

func convertLog(lr plog.LogRecord, ri resourceInfo, lim Limits, where string, now time.Time) (Log, error) {
	l := Log{Service: ri.service, Version: ri.version, Cluster: ri.cluster, Datacenter: ri.datacenter,
		TraceID: traceHex(lr.TraceID()), SpanID: spanHex(lr.SpanID())}
	switch {
	case lr.Timestamp() != 0:
		l.Time = lr.Timestamp().AsTime()
	case lr.ObservedTimestamp() != 0:
		l.Time = lr.ObservedTimestamp().AsTime()
	default:
		l.Time = now
	}
	l.Level = levelFromSeverity(int32(lr.SeverityNumber()))
	if t := lr.SeverityText(); t != "" {
		l.Level = NormalizeLevel(t)
	}
	if l.Level == "" {
		l.Level = "INFO"
	}
	l.Message = lr.Body().AsString()
	if len(l.Message) > lim.MaxValueLen {
		return l, badRequest("%s: body of %d bytes exceeds %d", where, len(l.Message), lim.MaxValueLen)
	}
	attrs := lr.Attributes()
	if attrs.Len()+len(ri.attrs) > lim.MaxAttrs {
		return l, badRequest("%s: %d attributes (with the resource's) exceed the limit of %d", where, attrs.Len()+len(ri.attrs), lim.MaxAttrs)
	}
	var err error
	attrs.Range(func(k string, v pcommon.Value) bool {
		s := v.AsString()
		if len(s) > lim.MaxValueLen {
			err = badRequest("%s: attribute %q: value of %d bytes exceeds %d", where, k, len(s), lim.MaxValueLen)
			return false
		}
		setLogField(&l, k, s)
		return true
	})
	for _, kv := range ri.attrs {
		l.Attrs.SetIfAbsent(kv.Key, kv.Value)
	}
	return l, err
}

// setLogField puts an attribute in its column when it is one of kit's
// access-log keys (or their OpenTelemetry semantic names).
func setLogField(l *Log, k, s string) {
	num := func() float64 {
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	switch k {
	case "log.kind":
		l.Kind = s
	case "method", "http.request.method":
		l.Method = s
	case "route", "http.route":
		l.Route = s
	case "status", "http.response.status_code":
		l.Status = int(num())
	case "duration_ms":
		l.DurationMS = num()
	case "bytes":
		l.Bytes = int64(num())
	case "caller", "pave.caller":
		l.Caller = s
	case "merchant_id":
		l.MerchantID = s
	case "cluster":
		l.Cluster = s
	case "datacenter":
		l.Datacenter = s
	default:
		l.Attrs.Set(k, s)
	}
}

// DecodeOTLPTraces turns an ExportTraceServiceRequest into spans.
func DecodeOTLPTraces(body []byte, asJSON bool, lim Limits) ([]Span, error) {
	lim = lim.withDefaults()
	req := ptraceotlp.NewExportRequest()
	var err error
	if asJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		return nil, badRequest("not an OTLP ExportTraceServiceRequest: %v", err)
	}
	td := req.Traces()
	out := make([]Span, 0, td.SpanCount())
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		where := fmt.Sprintf("resourceSpans[%d]", i)
		ri, err := readResource(rs.Resource().Attributes(), lim, where)
		if err != nil {
			return nil, err
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				w := fmt.Sprintf("%s.scopeSpans[%d].spans[%d]", where, j, k)
				if sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() {
					return nil, badRequest("%s: traceId and spanId are required", w)
				}
				if sp.Attributes().Len()+len(ri.attrs) > lim.MaxAttrs {
					return nil, badRequest("%s: %d attributes (with the resource's) exceed the limit of %d", w, sp.Attributes().Len()+len(ri.attrs), lim.MaxAttrs)
				}
				s := Span{TraceID: traceHex(sp.TraceID()), SpanID: spanHex(sp.SpanID()), ParentID: spanHex(sp.ParentSpanID()),
					Name: sp.Name(), Service: ri.service, Version: ri.version, Kind: strings.ToLower(strings.TrimPrefix(sp.Kind().String(), "SPAN_KIND_")),
					Start: sp.StartTimestamp().AsTime(), End: sp.EndTimestamp().AsTime(), StatusText: sp.Status().Message()}
				switch sp.Status().Code() {
				case ptrace.StatusCodeOk:
					s.Status = "ok"
				case ptrace.StatusCodeError:
					s.Status = "error"
				}
				var aerr error
				sp.Attributes().Range(func(k string, v pcommon.Value) bool {
					str := v.AsString()
					if len(str) > lim.MaxValueLen {
						aerr = badRequest("%s: attribute %q: value of %d bytes exceeds %d", w, k, len(str), lim.MaxValueLen)
						return false
					}
					s.Attrs.Set(k, str)
					return true
				})
				if aerr != nil {
					return nil, aerr
				}
				if ri.cluster != "" {
					s.Attrs.Set("pave.cluster", ri.cluster)
				}
				if ri.datacenter != "" {
					s.Attrs.Set("pave.datacenter", ri.datacenter)
				}
				for _, kv := range ri.attrs {
					s.Attrs.SetIfAbsent(kv.Key, kv.Value)
				}
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// DecodeJSONLines reads one JSON object per line. Known keys (time, _time,
// timestamp; service; level; msg, message, _msg; trace_id; span_id and
// kit's access-log keys) fill columns, the rest become attributes.
//
// Every string of every record is a substring of one copy of the body
// (unless it had escapes): one allocation per batch instead of one per
// value, and the batch's records live in memory together until they are
// flushed, so nothing is held longer than it would be anyway.
func DecodeJSONLines(body []byte, defaultService string, lim Limits, now time.Time) ([]Log, error) {
	lim = lim.withDefaults()
	text := string(body)
	out := make([]Log, 0, bytes.Count(body, []byte{'\n'})+1)
	var attrs, slab []Attr // a line's attributes are gathered, then kept in a shared slab
	line := 0
	for pos := 0; pos < len(body); {
		line++
		start, end := pos, len(body)
		if i := bytes.IndexByte(body[pos:], '\n'); i >= 0 {
			end = pos + i
		}
		pos = end + 1
		for start < end && isSpace(body[start]) {
			start++
		}
		for end > start && isSpace(body[end-1]) {
			end--
		}
		if start == end {
			continue
		}
		str := func(b []byte, off int) string {
			if off < 0 {
				return string(b)
			}
			return text[start+off : start+off+len(b)]
		}
		l := Log{Service: defaultService, Attrs: attrs[:0]}
		keys := 0
		err := scanFlatObject(body[start:end], func(f *jsonField) error {
			keys++
			if keys > lim.MaxAttrs+16 {
				return fmt.Errorf("more than %d keys", lim.MaxAttrs+16)
			}
			if len(f.Val) > lim.MaxValueLen {
				return fmt.Errorf("key %q: value of %d bytes exceeds %d", f.Key, len(f.Val), lim.MaxValueLen)
			}
			var s string
			if f.IsString || string(f.Val) != "null" {
				s = str(f.Val, f.ValOff)
			}
			switch string(f.Key) {
			case "time", "_time", "timestamp", "ts":
				t, err := parseLineTime(s, f.IsString)
				if err != nil {
					return fmt.Errorf("key %q: %w", f.Key, err)
				}
				l.Time = t
			case "service", "service.name":
				l.Service = s
			case "version", "service.version":
				l.Version = s
			case "level", "severity", "severity_text":
				l.Level = NormalizeLevel(s)
			case "msg", "message", "_msg", "body":
				l.Message = s
			case "trace_id", "traceId":
				l.TraceID = lowerHex(s)
			case "span_id", "spanId":
				l.SpanID = lowerHex(s)
			case "kind":
				l.Kind = s
			default:
				setLogField(&l, str(f.Key, f.KeyOff), s)
			}
			return nil
		})
		if err != nil {
			return nil, badRequest("line %d: %v", line, err)
		}
		attrs = l.Attrs
		if l.Attrs = nil; len(attrs) > 0 {
			if cap(slab)-len(slab) < len(attrs) {
				slab = make([]Attr, 0, max(1024, len(attrs)))
			}
			n := len(slab)
			slab = append(slab, attrs...)
			l.Attrs = slab[n:len(slab):len(slab)] // capped: a later Set copies instead of overwriting the next line's
		}
		if l.Time.IsZero() {
			l.Time = now
		}
		if l.Service == "" {
			return nil, badRequest("line %d: no service: add a \"service\" key or ?service=NAME to the URL", line)
		}
		if l.Level == "" {
			l.Level = "INFO"
		}
		if l.Kind == "" && l.Route != "" && l.Status != 0 {
			l.Kind = "access"
		}
		out = append(out, l)
	}
	return out, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// lowerHex lower-cases ids, allocating only when needed.
func lowerHex(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func parseLineTime(s string, isString bool) (time.Time, error) {
	if isString {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return t, fmt.Errorf("%q is not RFC 3339 time", s)
		}
		return t.UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("%s is not a Unix time", s)
	}
	switch {
	case f > 1e17: // nanoseconds
		return time.Unix(0, int64(f)).UTC(), nil
	case f > 1e14: // microseconds
		return time.UnixMicro(int64(f)).UTC(), nil
	case f > 1e11: // milliseconds
		return time.UnixMilli(int64(f)).UTC(), nil
	}
	return time.Unix(0, int64(f*1e9)).UTC(), nil
}
