// Package telemetry keeps every log line and span the services send: an
// OTLP/HTTP and JSON-lines intake that acknowledges only durable records, an
// embedded store with a hot tier of compressed columnar blocks on local disk
// and a cold tier of sealed partitions in a blob store, and the queries the
// CLI and the web UI ask (by trace, service, time, fields and text).
package telemetry

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"
)

// Log is one log line. The access-log keys kit writes are first-class
// columns; everything else goes to Attrs.
type Log struct {
	Time       time.Time `json:"time"`
	Service    string    `json:"service"`
	Version    string    `json:"version,omitempty"`
	Level      string    `json:"level"`
	Message    string    `json:"message"`
	Kind       string    `json:"kind,omitempty"` // "access" or "app"
	TraceID    string    `json:"trace_id,omitempty"`
	SpanID     string    `json:"span_id,omitempty"`
	Method     string    `json:"method,omitempty"`
	Route      string    `json:"route,omitempty"`
	Status     int       `json:"status,omitempty"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Bytes      int64     `json:"bytes,omitempty"`
	Caller     string    `json:"caller,omitempty"`
	Cluster    string    `json:"cluster,omitempty"`
	Datacenter string    `json:"datacenter,omitempty"`
	MerchantID string    `json:"merchant_id,omitempty"`
	Attrs      Attrs     `json:"attrs,omitempty"`
}

// Span is one span of a trace.
type Span struct {
	TraceID    string    `json:"trace_id"`
	SpanID     string    `json:"span_id"`
	ParentID   string    `json:"parent_id,omitempty"`
	Name       string    `json:"name"`
	Service    string    `json:"service"`
	Version    string    `json:"version,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Status     string    `json:"status,omitempty"` // "ok", "error" or ""
	StatusText string    `json:"status_message,omitempty"`
	Attrs      Attrs     `json:"attrs,omitempty"`
}

// Store is what the API, the intake and in-process producers (the gateway's
// access log, the local runtime's process output) need of a telemetry
// backend. Append returns only once the records are durable, and takes
// the slice: the caller must not modify or reuse it afterwards (the
// embedded store keeps committed batches as they are, without a copy).
type Store interface {
	AppendLogs(ctx context.Context, logs []Log) error
	AppendSpans(ctx context.Context, spans []Span) error
	Query(ctx context.Context, q Query) (Result, error)
	Trace(ctx context.Context, traceID string) (TraceResult, error)
}

// ErrBusy means the store is behind on flushing: retry later (HTTP 429).
var ErrBusy = errors.New("telemetry store is busy flushing; retry later")

// ErrUnavailable wraps write failures such as a full disk (HTTP 503): the
// records were not stored and may be sent again.
var ErrUnavailable = errors.New("telemetry store cannot write")

// Levels in severity order; a query for a level returns it and above.
var levelRank = map[string]int{"TRACE": 1, "DEBUG": 2, "INFO": 3, "WARN": 4, "ERROR": 5, "FATAL": 6}

// NormalizeLevel maps the spellings SDKs use (warning, Err, 13) onto
// TRACE, DEBUG, INFO, WARN, ERROR or FATAL; unknown text is kept upper-cased.
func NormalizeLevel(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	switch {
	case u == "":
		return "INFO"
	case strings.HasPrefix(u, "WARN"):
		return "WARN"
	case strings.HasPrefix(u, "ERR"):
		return "ERROR"
	case strings.HasPrefix(u, "INF"):
		return "INFO"
	case strings.HasPrefix(u, "DEB"), strings.HasPrefix(u, "DBG"):
		return "DEBUG"
	case strings.HasPrefix(u, "TRAC"):
		return "TRACE"
	case strings.HasPrefix(u, "FATAL"), strings.HasPrefix(u, "CRIT"), strings.HasPrefix(u, "PANIC"):
		return "FATAL"
	}
	return u
}

// levelFromSeverity maps an OTLP severity number (1–24) onto a level.
func levelFromSeverity(n int32) string {
	switch {
	case n <= 0:
		return ""
	case n <= 4:
		return "TRACE"
	case n <= 8:
		return "DEBUG"
	case n <= 12:
		return "INFO"
	case n <= 16:
		return "WARN"
	case n <= 20:
		return "ERROR"
	}
	return "FATAL"
}

// The binary codec below is used by the write-ahead log. Blocks use their
// own columnar layout (block.go).

type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) f64(f float64)    { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f)) }
func (e *enc) attrs(a Attrs) {
	e.uvarint(uint64(len(a)))
	for _, kv := range a {
		e.str(kv.Key)
		e.str(kv.Value)
	}
}

type dec struct {
	b   []byte
	err error
	// view: strings are views of b instead of copies (the memory table's
	// records, which never change once committed).
	view bool
}

var errShort = errors.New("truncated record")

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) > 0 && d.b[0] < 0x80 { // most lengths and counts
		v := d.b[0]
		d.b = d.b[1:]
		return uint64(v)
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	var s string
	switch {
	case n == 0:
	case d.view:
		s = unsafe.String(&d.b[0], int(n))
	default:
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

func (d *dec) f64() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) attrs() Attrs {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	a := make(Attrs, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		a = append(a, Attr{k, d.str()})
	}
	return a
}

func appendLogRecord(e *enc, l *Log) {
	e.varint(l.Time.UnixNano())
	for _, s := range [...]string{l.Service, l.Version, l.Level, l.Message, l.Kind, l.TraceID, l.SpanID,
		l.Method, l.Route, l.Caller, l.Cluster, l.Datacenter, l.MerchantID} {
		e.str(s)
	}
	e.varint(int64(l.Status))
	e.f64(l.DurationMS)
	e.varint(l.Bytes)
	e.attrs(l.Attrs)
}

func readLogRecord(d *dec) Log {
	var l Log
	l.Time = time.Unix(0, d.varint()).UTC()
	for _, p := range [...]*string{&l.Service, &l.Version, &l.Level, &l.Message, &l.Kind, &l.TraceID, &l.SpanID,
		&l.Method, &l.Route, &l.Caller, &l.Cluster, &l.Datacenter, &l.MerchantID} {
		*p = d.str()
	}
	l.Status = int(d.varint())
	l.DurationMS = d.f64()
	l.Bytes = d.varint()
	l.Attrs = d.attrs()
	return l
}

func appendSpanRecord(e *enc, s *Span) {
	e.varint(s.Start.UnixNano())
	e.varint(s.End.UnixNano())
	for _, v := range [...]string{s.TraceID, s.SpanID, s.ParentID, s.Name, s.Service, s.Version, s.Kind, s.Status, s.StatusText} {
		e.str(v)
	}
	e.attrs(s.Attrs)
}

func readSpanRecord(d *dec) Span {
	var s Span
	s.Start = time.Unix(0, d.varint()).UTC()
	s.End = time.Unix(0, d.varint()).UTC()
	for _, p := range [...]*string{&s.TraceID, &s.SpanID, &s.ParentID, &s.Name, &s.Service, &s.Version, &s.Kind, &s.Status, &s.StatusText} {
		*p = d.str()
	}
	s.Attrs = d.attrs()
	return s
}

// approxSize is what a record costs in memory, for back-pressure: the
// struct, its strings and its attributes.
func (l *Log) approxSize() int {
	return 300 + len(l.Service) + len(l.Version) + len(l.Level) + len(l.Message) + len(l.Kind) + len(l.TraceID) + len(l.SpanID) +
		len(l.Method) + len(l.Route) + len(l.Caller) + len(l.Cluster) + len(l.Datacenter) + len(l.MerchantID) + l.Attrs.approxSize()
}

func (s *Span) approxSize() int {
	return 300 + len(s.Name) + len(s.Service) + len(s.TraceID) + len(s.SpanID) + len(s.ParentID) + len(s.StatusText) + s.Attrs.approxSize()
}

func validHexID(s string, n int) error {
	if len(s) != 2*n {
		return fmt.Errorf("want %d hex digits, got %d characters", 2*n, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("character %q at %d is not a lower-case hex digit", c, i)
		}
	}
	return nil
}

// ValidTraceID checks a trace id given by a user: 32 lower-case hex digits.
func ValidTraceID(s string) error { return validHexID(strings.ToLower(s), 16) }
