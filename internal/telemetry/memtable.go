package telemetry

import (
	"strings"
	"unsafe"
)

// The memory table holds committed batches in their write-ahead log
// encoding (a count, then one record after the other: varints and
// length-prefixed strings), not as []Log: about 140 bytes a kit access
// line instead of a 280-byte Log struct plus the 300-byte JSON text its
// strings pointed into. The encoding is made once for the WAL anyway, so
// keeping it costs nothing; the decoded batch becomes garbage as soon as it
// is committed. Readers decode the records as they go, with strings that
// are views of the encoded bytes (never copied, never changed once
// committed), so a line kept by a query costs its Log and no string copies.
type memtable struct {
	logs   []memBatch
	spans  []memBatch
	lines  int    // log lines and spans
	bytes  int    // the records' size as decoded (approxSize), what flushes are sized by
	walSeq uint64 // once frozen: the last WAL segment it covers
}

// memBatch is one committed batch: its WAL payload after the entry type
// (uvarint count, then the records).
type memBatch []byte

// eachLog calls fn with every log line; *l is reused between calls, so fn
// copies what it keeps.
func (m *memtable) eachLog(fn func(l *Log)) {
	m.eachLogWith("", fn)
}

// eachLogWith is eachLog skipping the batches whose bytes do not contain
// needle (a trace id: the record holds it as text), without decoding them.
func (m *memtable) eachLogWith(needle string, fn func(l *Log)) {
	for _, b := range m.logs {
		if needle != "" && !strings.Contains(unsafe.String(unsafe.SliceData(b), len(b)), needle) {
			continue
		}
		d := &dec{b: b, view: true}
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			l := readLogRecord(d)
			fn(&l)
		}
	}
}

// eachSpan calls fn with every span; *sp is reused between calls.
func (m *memtable) eachSpan(fn func(sp *Span)) {
	m.eachSpanWith("", fn)
}

func (m *memtable) eachSpanWith(needle string, fn func(sp *Span)) {
	for _, b := range m.spans {
		if needle != "" && !strings.Contains(unsafe.String(unsafe.SliceData(b), len(b)), needle) {
			continue
		}
		d := &dec{b: b, view: true}
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			sp := readSpanRecord(d)
			fn(&sp)
		}
	}
}

// allLogs and allSpans decode the table for a flush, which sorts and holds
// the records by pointer until its blocks are written.
func (m *memtable) allLogs() []Log {
	out := make([]Log, 0, m.lines)
	m.eachLog(func(l *Log) { out = append(out, *l) })
	return out
}

func (m *memtable) allSpans() []Span {
	var out []Span
	m.eachSpan(func(sp *Span) { out = append(out, *sp) })
	return out
}
