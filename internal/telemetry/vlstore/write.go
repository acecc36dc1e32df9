package vlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pave-platform/pave/internal/telemetry"
)

// Appending, with the embedded store's rule: acknowledged means durable.
//
// VictoriaLogs answers an insert as soon as it has parsed it: a
// vlinsert node holds the lines in a buffer for up to a second before it
// sends them to a storage node, and a storage node keeps what it received
// in memory for up to -inmemoryDataFlushInterval before writing it to disk
// (fsynced; it survives a kill -9 from then on). So an append here is
// acknowledged only after
//
//  1. the insert was answered 2xx,
//  2. /internal/force_flush made every buffered line searchable, and a
//     count of the append's records (each record carries its batch id)
//     finds all of them — wherever vlinsert put them, also after it
//     re-routed lines away from a dead storage node;
//  3. two flush intervals and a margin have passed since (the storage
//     node's flusher writes a part to disk at its first tick after the
//     part's deadline), and a second count still finds all of them: a
//     storage node that crashed in the meantime, losing what it held in
//     memory, shows as missing records.
//
// A failure at any step is telemetry.ErrUnavailable: the intake answers
// 503 and the sender retries; nothing is acknowledged that was not found.
// A retried batch may be stored twice if the failure came after it
// reached the disk (at-least-once, where the embedded store is exactly
// once). Concurrent appends share the force_flush and the counts (group
// commit), and their waits overlap, so throughput does not suffer from the
// wait; the latency of one append is about 2×FlushInterval + 1s.

const insertPath = "/insert/jsonline?_stream_fields=" + fieldType + ",service&_time_field=_time&_msg_field=_msg"

// AppendLogs stores the lines; see the comment above for when it returns.
func (s *Store) AppendLogs(ctx context.Context, logs []telemetry.Log) error {
	if len(logs) == 0 {
		return nil
	}
	batch := newBatchID()
	b := make([]byte, 0, 256*len(logs)) // not pooled: the transport may read it after Do returns
	minT, maxT := logs[0].Time, logs[0].Time
	for i := range logs {
		b = appendLog(b, &logs[i], batch, i)
		minT, maxT = minTime(minT, logs[i].Time), maxTime(maxT, logs[i].Time)
	}
	return s.append(ctx, b, batch, len(logs), minT, maxT)
}

// AppendSpans stores the spans, each one record at its start time.
func (s *Store) AppendSpans(ctx context.Context, spans []telemetry.Span) error {
	if len(spans) == 0 {
		return nil
	}
	batch := newBatchID()
	b := make([]byte, 0, 256*len(spans))
	minT, maxT := spans[0].Start, spans[0].Start
	for i := range spans {
		b = appendSpan(b, &spans[i], batch, i)
		minT, maxT = minTime(minT, spans[i].Start), maxTime(maxT, spans[i].Start)
	}
	return s.append(ctx, b, batch, len(spans), minT, maxT)
}

func (s *Store) append(ctx context.Context, body []byte, batch string, n int, minT, maxT time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.AckTimeout)
	defer cancel()
	resp, err := s.do(ctx, http.MethodPost, insertPath, func() io.Reader { return bytes.NewReader(body) },
		http.Header{"Content-Type": {"application/stream+json"}})
	if err != nil {
		return fmt.Errorf("%w: VictoriaLogs refused the insert: %v", telemetry.ErrUnavailable, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return s.commit.wait(ctx, pendingBatch{id: batch, n: n, from: minT, to: maxT})
}

func newBatchID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// The records as JSON lines. Empty values are left out: VictoriaLogs
// treats an empty field as a missing one anyway.

func appendLog(b []byte, l *telemetry.Log, batch string, i int) []byte {
	b = append(b, `{"_time":"`...)
	b = l.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","`+fieldType+`":"log"`...)
	b = appendHeader(b, batch, i, l.Message)
	b = appendField(b, fieldRank, strconv.Itoa(rankOf(l.Level)))
	for _, f := range [...]struct{ k, v string }{{"service", l.Service}, {"version", l.Version}, {"level", l.Level},
		{"kind", l.Kind}, {"trace_id", l.TraceID}, {"span_id", l.SpanID}, {"method", l.Method}, {"route", l.Route},
		{"caller", l.Caller}, {"cluster", l.Cluster}, {"datacenter", l.Datacenter}, {"merchant_id", l.MerchantID}} {
		b = appendField(b, f.k, f.v)
	}
	if l.Status != 0 {
		b = appendField(b, "status", strconv.Itoa(l.Status))
	}
	if l.DurationMS != 0 {
		b = appendField(b, "duration_ms", strconv.FormatFloat(l.DurationMS, 'g', -1, 64))
	}
	if l.Bytes != 0 {
		b = appendField(b, "bytes", strconv.FormatInt(l.Bytes, 10))
	}
	b = appendAttrs(b, l.Attrs)
	return append(b, "}\n"...)
}

func appendSpan(b []byte, sp *telemetry.Span, batch string, i int) []byte {
	b = append(b, `{"_time":"`...)
	b = sp.Start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","`+fieldType+`":"span"`...)
	b = appendHeader(b, batch, i, sp.Name)
	b = appendField(b, "end", sp.End.UTC().Format(time.RFC3339Nano))
	for _, f := range [...]struct{ k, v string }{{"service", sp.Service}, {"version", sp.Version}, {"kind", sp.Kind},
		{"trace_id", sp.TraceID}, {"span_id", sp.SpanID}, {"parent_id", sp.ParentID}, {"status", sp.Status},
		{"status_message", sp.StatusText}} {
		b = appendField(b, f.k, f.v)
	}
	b = appendAttrs(b, sp.Attrs)
	return append(b, "}\n"...)
}

func appendHeader(b []byte, batch string, i int, msg string) []byte {
	b = append(b, `,"`+fieldBatch+`":"`...)
	b = append(b, batch...)
	b = append(b, `","`+fieldID+`":"`...)
	b = append(b, batch...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '"')
	if msg == "" {
		return appendField(b, fieldNoMsg, "1")
	}
	return appendField(b, "_msg", msg)
}

func appendAttrs(b []byte, a telemetry.Attrs) []byte {
	for _, kv := range a {
		if kv.Value != "" {
			b = append(b, ',')
			b = appendJSONString(b, attrPrefix+kv.Key)
			b = append(b, ':')
			b = appendJSONString(b, kv.Value)
		}
	}
	return b
}

func appendField(b []byte, k, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, k...) // Pave's own field names: nothing to escape
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
