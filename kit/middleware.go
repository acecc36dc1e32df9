package kit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// unmatchedRoute is the one route label every request that matched no
// pattern gets (404, 405, redirects), so scanners cannot grow the series.
const unmatchedRoute = "unmatched"

// maxFieldLen bounds caller and merchant ids kept in logs and spans.
const maxFieldLen = 128

// callerMember is the W3C baggage member that names the calling service.
const callerMember = "caller.service"

var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// instrumented is the middleware stack: trace context in, server span,
// RED metrics, access log, exported log record.
type instrumented struct {
	a              *App
	next           http.Handler
	health         http.Handler
	ready          http.Handler
	metrics        http.Handler
	merchantHeader string
	logPrefix      []byte // `,"service":…,"version":…` pre-escaped
	logMiddle      []byte // `,"cluster":…,"datacenter":…` pre-escaped
}

func (a *App) instrument(next http.Handler) *instrumented {
	h := &instrumented{
		a:              a,
		next:           next,
		merchantHeader: textproto.CanonicalMIMEHeaderKey(a.cfg.MerchantHeader),
		metrics:        promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
	}
	h.health = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	h.ready = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !a.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	b := []byte(`,"service":`)
	b = appendJSONString(b, a.cfg.Service)
	b = append(b, `,"version":`...)
	h.logPrefix = appendJSONString(b, a.cfg.Version)
	b = []byte(`,"cluster":`)
	b = appendJSONString(b, a.cfg.Cluster)
	b = append(b, `,"datacenter":`...)
	h.logMiddle = appendJSONString(b, a.cfg.Datacenter)
	return h
}

// requestState is pooled: the recorder and the log buffer would otherwise
// be two allocations per request.
type requestState struct {
	rec recorder
	buf []byte
}

var statePool = sync.Pool{New: func() any { return &requestState{buf: make([]byte, 0, 512)} }}

func (h *instrumented) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		h.health.ServeHTTP(w, r)
		return
	case "/readyz":
		h.ready.ServeHTTP(w, r)
		return
	case "/metrics":
		h.metrics.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	a := h.a
	ctx, caller := a.extract(r)
	ctx, span := a.tracer.Start(ctx, methodLabel(r.Method), serverSpan...)
	r = r.WithContext(ctx)

	st := statePool.Get().(*requestState)
	st.rec = recorder{ResponseWriter: w, req: r}
	if p := h.call(&st.rec, r); p != nil {
		if p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
			h.finish(st, r, span, caller, start)
			panic(p)
		}
		a.log.ErrorContext(ctx, "handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		if !st.rec.wroteHeader {
			http.Error(&st.rec, "internal server error", http.StatusInternalServerError)
		} else {
			st.rec.status = http.StatusInternalServerError
		}
	}
	st.rec.stampRoute() // a handler that wrote nothing: net/http writes the head after us
	h.finish(st, r, span, caller, start)
}

func (h *instrumented) call(w http.ResponseWriter, r *http.Request) (p any) {
	defer func() { p = recover() }()
	h.next.ServeHTTP(w, r)
	return nil
}

func (h *instrumented) finish(st *requestState, r *http.Request, span trace.Span, caller string, start time.Time) {
	a := h.a
	status := st.rec.status
	if status == 0 {
		status = http.StatusOK
	}
	route := unmatchedRoute
	if r.Pattern != "" {
		route = r.Pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		span.SetName(r.Pattern)
	}
	method := methodLabel(r.Method)
	merchant := h.merchant(r)
	// One call with a stack array: each SetAttributes costs allocations.
	attrs := [...]attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("http.route", route),
		attribute.Int("http.response.status_code", status),
		attribute.String("pave.caller", caller),
	}
	n := len(attrs)
	if caller == "" {
		n--
	}
	span.SetAttributes(attrs[:n]...)
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
	end := time.Now()
	dur := end.Sub(start)
	a.metrics.observe(route, method, status, dur)

	sc := span.SpanContext()
	b := st.buf[:0]
	b = append(b, `{"time":"`...)
	b = end.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","trace_id":"`...)
	b = appendHexID(b, sc.TraceID())
	b = append(b, `","span_id":"`...)
	b = appendHexSpan(b, sc.SpanID())
	b = append(b, '"')
	b = append(b, h.logPrefix...)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, route)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(dur.Nanoseconds())/1e6, 'f', 3, 64)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, st.rec.bytes, 10)
	b = append(b, `,"caller":`...)
	b = appendJSONString(b, caller)
	b = append(b, h.logMiddle...)
	b = append(b, `,"merchant_id":`...)
	b = appendJSONString(b, merchant)
	b = append(b, "}\n"...)
	_, _ = a.out.Write(b)

	// A 5xx is the service's own failure: exported at ERROR so a search for
	// errors finds the failing requests; 4xx are the caller's and stay INFO.
	level := levelInfo
	if status >= 500 {
		level = levelError
	}
	a.export.enqueueLog(logRecord{
		time:    end,
		level:   level,
		traceID: sc.TraceID(),
		spanID:  sc.SpanID(),
		flags:   byte(sc.TraceFlags()),
		access: accessFields{
			method: method, route: route, status: status, duration: dur,
			bytes: st.rec.bytes, caller: caller, merchant: merchant,
		},
		isAccess: true,
	})

	if cap(b) <= 4096 {
		st.buf = b[:0]
		st.rec = recorder{}
		statePool.Put(st)
	}
}

func appendHexID(b []byte, id trace.TraceID) []byte {
	const hex = "0123456789abcdef"
	for _, c := range id {
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}

func appendHexSpan(b []byte, id trace.SpanID) []byte {
	const hex = "0123456789abcdef"
	for _, c := range id {
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}

// methodLabel keeps the method label bounded: anything non-standard is OTHER.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func (h *instrumented) merchant(r *http.Request) string {
	var v string
	if h.a.cfg.MerchantID != nil {
		v = h.a.cfg.MerchantID(r)
	} else if vals := r.Header[h.merchantHeader]; len(vals) > 0 {
		v = vals[0]
	}
	if v != "" && !validField(v) {
		h.a.metrics.dropped.merchant.Inc()
		return ""
	}
	return v
}

// validField accepts what an identifier may look like in a log: bounded,
// valid UTF-8, no control characters. Anything else is dropped and counted
// rather than escaped, because a mangled id is worse than none.
func validField(s string) bool {
	if len(s) > maxFieldLen || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	for _, r := range s {
		if r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// extract reads the W3C trace context and baggage of an incoming request.
// Malformed or oversized values are dropped (the request is still served,
// as a new trace) and counted in kit_dropped_fields_total.
func (a *App) extract(r *http.Request) (context.Context, string) {
	ctx := r.Context()
	if v := r.Header["Traceparent"]; len(v) > 0 {
		sc, ok := parseTraceparent(v[0])
		if !ok || len(v) > 1 {
			a.metrics.dropped.traceparent.Inc()
		} else {
			if ts := r.Header["Tracestate"]; len(ts) > 0 {
				state, err := trace.ParseTraceState(strings.Join(ts, ","))
				if err != nil {
					a.metrics.dropped.tracestate.Inc()
				} else {
					sc = sc.WithTraceState(state)
				}
			}
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	var caller string
	if v := r.Header["Baggage"]; len(v) > 0 {
		if len(v) == 1 {
			if c, ok := onlyCaller(v[0]); ok {
				// The common kit-to-kit case: nothing to keep in the context,
				// since kit's client sets caller.service itself downstream.
				if validField(c) {
					return ctx, c
				}
				a.metrics.dropped.caller.Inc()
				return ctx, ""
			}
		}
		raw := v[0]
		if len(v) > 1 {
			raw = strings.Join(v, ",")
		}
		bag, err := baggage.Parse(raw)
		if err != nil {
			a.metrics.dropped.baggage.Inc()
		} else {
			ctx = baggage.ContextWithBaggage(ctx, bag)
			if c := bag.Member(callerMember).Value(); c != "" {
				if validField(c) {
					caller = c
				} else {
					a.metrics.dropped.caller.Inc()
				}
			}
		}
	}
	return ctx, caller
}

// onlyCaller recognises a baggage header that holds nothing but
// caller.service with a plain value (no percent-encoding, properties or
// spaces), which is what kit's client sends. Anything else goes through the
// full W3C parser.
func onlyCaller(h string) (string, bool) {
	const prefix = callerMember + "="
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		return "", false
	}
	v := h[len(prefix):]
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", false
		}
	}
	return v, true
}

// parseTraceparent parses a W3C traceparent header without allocating.
// Version 00 must be exactly 55 characters; later versions may append
// fields after a dash, which are ignored as the spec requires.
func parseTraceparent(h string) (trace.SpanContext, bool) {
	if len(h) < 55 || (len(h) > 55 && h[55] != '-') || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return trace.SpanContext{}, false
	}
	ver, ok := hexByte(h[0], h[1])
	if !ok || ver == 0xff || (ver == 0 && len(h) != 55) {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	for i := range tid {
		if tid[i], ok = hexByte(h[3+2*i], h[4+2*i]); !ok {
			return trace.SpanContext{}, false
		}
	}
	var sid trace.SpanID
	for i := range sid {
		if sid[i], ok = hexByte(h[36+2*i], h[37+2*i]); !ok {
			return trace.SpanContext{}, false
		}
	}
	flags, ok := hexByte(h[53], h[54])
	// Version 00 reserves the flag bits above sampled and random.
	if !ok || (ver == 0 && flags > 3) || !tid.IsValid() || !sid.IsValid() {
		return trace.SpanContext{}, false
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags) & (trace.FlagsSampled | trace.FlagsRandom), Remote: true,
	}), true
}

// hexByte decodes two lower-case hex digits; upper case is invalid in W3C
// trace context.
func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexDigit(hi)
	l, ok2 := hexDigit(lo)
	return h<<4 | l, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// recorder captures status and size for the access log. It unwraps for
// http.ResponseController and keeps Flush and Hijack working.
type recorder struct {
	http.ResponseWriter
	req         *http.Request // its Pattern is set by the mux before the handler writes
	status      int
	bytes       int64
	wroteHeader bool
	routeSent   bool
}

// RouteHeader is the response header in which kit reports the route
// template the request matched ("GET /v1/orders/{id}"): Pave's gateway
// reads it, counts the request under it (statistics, access records, the
// per-route split) and strips it before the answer leaves.
const RouteHeader = "X-Pave-Route"

// stampRoute adds RouteHeader before the head is written.
func (w *recorder) stampRoute() {
	if w.routeSent {
		return
	}
	w.routeSent = true
	if w.req != nil && w.req.Pattern != "" {
		w.ResponseWriter.Header().Set(RouteHeader, w.req.Pattern)
	}
}

func (w *recorder) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.status = code
		w.wroteHeader = true
	}
	w.stampRoute()
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.status = http.StatusOK
		w.wroteHeader = true
	}
	w.stampRoute()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Flush() {
	if !w.wroteHeader {
		w.status = http.StatusOK
		w.wroteHeader = true
	}
	w.stampRoute()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := w.ResponseWriter.(http.Hijacker); ok {
		w.status = http.StatusSwitchingProtocols
		w.wroteHeader = true
		return hj.Hijack()
	}
	return nil, nil, errors.New("kit: the underlying ResponseWriter does not support hijacking")
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
