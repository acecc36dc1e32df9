package telemetry

import (
	"strings"
	"time"
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

// memRef locates a log line of the table for a flush, which sorts these
// (40 bytes a line) and decodes one block's lines at a time, instead of
// holding the whole table as Log structs while it writes.
type memRef struct {
	svc        string
	t          int64
	batch, off int32
}

// logRefs returns the table's lines by partition (partOf names it).
func (m *memtable) logRefs(partOf func(time.Time) string) map[string][]memRef {
	out := map[string][]memRef{}
	for bi, b := range m.logs {
		d := &dec{b: b, view: true}
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			off := len(b) - len(d.b)
			l := readLogRecord(d)
			p := partOf(l.Time)
			out[p] = append(out[p], memRef{svc: l.Service, t: l.Time.UnixNano(), batch: int32(bi), off: int32(off)})
		}
	}
	return out
}

// decodeRefs decodes the lines refs name, in their order, into buf and
// points ptrs at them (both reused from the previous row group: the block
// writer keeps no pointer to the lines it encoded, only strings, which are
// views of the table's bytes).
func (m *memtable) decodeRefs(refs []*memRef, buf []Log, ptrs []*Log) ([]*Log, []Log) {
	buf = buf[:0]
	for _, r := range refs {
		buf = append(buf, readLogRecord(&dec{b: m.logs[r.batch][r.off:], view: true}))
	}
	ptrs = ptrs[:0]
	for i := range buf {
		ptrs = append(ptrs, &buf[i])
	}
	return ptrs, buf
}

// allSpans decodes the table's spans for a flush.
func (m *memtable) allSpans() []Span {
	var out []Span
	m.eachSpan(func(sp *Span) { out = append(out, *sp) })
	return out
}
