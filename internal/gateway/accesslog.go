package gateway

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// AccessRecord is one request as the gateway saw it. The keys are those
// of kit's access log, so the telemetry store indexes gateway and service
// records alike and one trace_id joins them.
type AccessRecord struct {
	Time       time.Time `json:"time"`
	TraceID    string    `json:"trace_id"`
	SpanID     string    `json:"span_id"`
	Service    string    `json:"service"`
	Version    string    `json:"version"`
	Method     string    `json:"method"`
	Route      string    `json:"route"`
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
	Bytes      int       `json:"bytes"`
	Caller     string    `json:"caller,omitempty"`
	Cluster    string    `json:"cluster,omitempty"`
	Datacenter string    `json:"datacenter,omitempty"`
	MerchantID string    `json:"merchant_id,omitempty"`
}

// AccessLogger receives access records. The gateway calls it from one
// background goroutine, never from the request path, so an implementation
// may block briefly (write a file, append to a store); when it falls
// behind, records are dropped and counted rather than slowing traffic.
type AccessLogger interface {
	LogAccess(*AccessRecord)
}

// BatchAccessLogger is an AccessLogger that takes records in batches (a
// store that makes each append durable should implement it). The slice is
// reused after the call returns.
type BatchAccessLogger interface {
	AccessLogger
	LogAccessBatch([]*AccessRecord)
}

// AccessSpiller is an AccessLogger that also keeps the records the
// gateway's in-memory queue has no room for (a disk spool): SpillAccess is
// called on the request path, so it must be quick, and returns false when
// it could not keep the record, which the gateway then counts as dropped.
type AccessSpiller interface {
	SpillAccess(*AccessRecord) bool
}

// accessOverflow takes a record the queue to the access logger had no
// room for: spilled when the logger can, else counted as dropped.
func (g *Gateway) accessOverflow(r *AccessRecord) {
	if s, ok := g.opts.AccessLog.(AccessSpiller); ok && s.SpillAccess(r) {
		return
	}
	// Counted (pave_gateway_access_log_dropped_total) and said in the
	// log at the 1st, 2nd, 4th, 8th... loss: never silent, never a flood.
	if n := g.accessDropped.Add(1); n&(n-1) == 0 {
		g.opts.Log.Warn("gateway: access records lost: the access logger fell behind and could not spill them",
			"lost_total", n, "queue", g.opts.AccessLogQueue, "service", r.Service)
	}
}

// JSONLines writes each record as one JSON line, buffered; Flush or Close
// the writer's owner as needed.
type JSONLines struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
}

// NewJSONLines returns an AccessLogger writing JSON lines to w.
func NewJSONLines(w io.Writer) *JSONLines {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &JSONLines{w: bw, enc: json.NewEncoder(bw)}
}

// LogAccess implements AccessLogger.
func (j *JSONLines) LogAccess(r *AccessRecord) {
	j.mu.Lock()
	_ = j.enc.Encode(r)
	j.mu.Unlock()
}

// Flush writes buffered lines out.
func (j *JSONLines) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.w.Flush()
}

// traceContext is the W3C trace context of one proxied request: the trace
// it belongs to and the gateway's own span, which becomes the parent of
// the upstream's span through the traceparent header.
type traceContext struct {
	traceID [32]byte // hex
	spanID  [16]byte // hex
	flags   [2]byte  // hex
}

// fromTraceparent parses "00-<32 hex>-<16 hex>-<2 hex>" and starts a new
// span in that trace; a missing or malformed header starts a new trace.
func (tc *traceContext) fromTraceparent(h []byte) {
	if len(h) == 55 && h[0] == '0' && h[1] == '0' && h[2] == '-' && h[35] == '-' && h[52] == '-' &&
		isLowerHex(h[3:35]) && isLowerHex(h[36:52]) && isLowerHex(h[53:55]) && !allZero(h[3:35]) {
		copy(tc.traceID[:], h[3:35])
		copy(tc.flags[:], h[53:55])
	} else {
		var id [16]byte
		putRandom(id[:])
		hex.Encode(tc.traceID[:], id[:])
		tc.flags = [2]byte{'0', '1'}
	}
	var span [8]byte
	putRandom(span[:])
	hex.Encode(tc.spanID[:], span[:])
}

// appendTraceparent appends the header value for the upstream.
func (tc *traceContext) appendTraceparent(dst []byte) []byte {
	dst = append(dst, "00-"...)
	dst = append(dst, tc.traceID[:]...)
	dst = append(dst, '-')
	dst = append(dst, tc.spanID[:]...)
	dst = append(dst, '-')
	return append(dst, tc.flags[:]...)
}

func putRandom(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

// maxFieldLen bounds caller and merchant ids kept in access records, as
// kit does.
const maxFieldLen = 128

// callerOf names the calling service the way kit does: the W3C baggage
// member caller.service, else the configured caller header.
func callerOf(baggage, header []byte) string {
	for len(baggage) > 0 {
		var member []byte
		if i := bytes.IndexByte(baggage, ','); i >= 0 {
			member, baggage = baggage[:i], baggage[i+1:]
		} else {
			member, baggage = baggage, nil
		}
		if i := bytes.IndexByte(member, ';'); i >= 0 {
			member = member[:i]
		}
		k, v, ok := bytes.Cut(bytes.TrimSpace(member), []byte("="))
		if ok && string(bytes.TrimSpace(k)) == "caller.service" {
			if v := bytes.TrimSpace(v); len(v) > 0 {
				return boundField(v)
			}
		}
	}
	return boundField(header)
}

func boundField(b []byte) string {
	if len(b) > maxFieldLen {
		b = b[:maxFieldLen]
	}
	return string(b)
}
