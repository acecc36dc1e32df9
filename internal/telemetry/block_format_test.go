package telemetry

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// formatFixtureLogs are the lines of testdata/format1-logs.blk, a block
// written by the first block format (before ids were split from their
// flags): hex trace ids shared by two lines, some empty, some not hex.
func formatFixtureLogs() []*Log {
	logs := genLogs(1200)
	out := make([]*Log, len(logs))
	for i := range logs {
		l := &logs[i]
		if i%7 == 0 {
			l.TraceID = ""
		}
		if i%11 == 0 {
			l.SpanID = "not-hex-span"
		}
		if i%13 == 0 {
			l.TraceID = "ABCDEF0123456789ABCDEF0123456789" // upper case: not canonical hex
		}
		out[i] = l
	}
	sortLogs(out)
	return out
}

func formatFixtureSpans() []*Span {
	var out []*Span
	for i := range 300 {
		s := &Span{TraceID: traceID(i / 3), SpanID: spanID(i), Name: fmt.Sprintf("op%d", i%5), Service: []string{"a", "b"}[i%2],
			Start: t0.Add(time.Duration(i) * time.Millisecond), End: t0.Add(time.Duration(i+3) * time.Millisecond)}
		if i%3 != 0 {
			s.ParentID = spanID(i - 1)
		}
		if i%17 == 0 {
			s.ParentID = "zz"
		}
		out = append(out, s)
	}
	sortSpans(out)
	return out
}

// Blocks of format 3 (word filters not salted, written before session
// 10) stay readable, and their skip indexes still rule groups in and out
// correctly: the fixture was written by that code. Every word of every
// line, and every line's whole message, finds the line's group.
func TestFormat3BlocksStillRead(t *testing.T) {
	checkOldWordFilters(t, "testdata/format3-logs.blk", 3)
}

// Blocks of format 4 written before session 11 have message word filters
// of 8 bits a key and 5 probes (12 and 8 since): a filter carries its
// probes and its size gives its bits, so they read as before. The fixture
// was written by that code.
func TestEightBitWordFiltersStillRead(t *testing.T) {
	data := checkOldWordFilters(t, "testdata/format4-8bit-logs.blk", 4)
	m, _ := readBlockMeta(data)
	for gi := range m.Groups {
		if w := m.Groups[gi].Words; len(w) == 0 || w[0] != 5 {
			t.Fatalf("group %d of the fixture: its word filter is not the old one (probes %v)", gi, w[:min(1, len(w))])
		}
	}
	m2 := &blockMeta{Name: "now.blk", Partition: "20261120T100000Z"}
	if _, err := encodeLogBlock(formatFixtureLogs(), m2); err != nil {
		t.Fatal(err)
	}
	if w := m2.Groups[0].Words; len(w) == 0 || w[0] != msgBloomProbes || len(w) <= len(m.Groups[0].Words) {
		t.Fatalf("a new block's word filter: %d probes, %d bytes; the 8-bit one of the same lines %d bytes", w[0], len(w), len(m.Groups[0].Words))
	}
}

func checkOldWordFilters(t *testing.T, path string, format int) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if blockFormat(data) != format {
		t.Fatalf("the fixture is not format %d", format)
	}
	m, err := readBlockMeta(data)
	if err != nil || m.Format != format {
		t.Fatalf("footer format %d, %v", m.Format, err)
	}
	checkFormatRoundTrip(t, bytes.NewReader(data), m, "logs")
	want := formatFixtureLogs()
	ruledIn := 0
	for _, l := range want {
		for _, needle := range append(strings.Fields(l.Message), l.Message) {
			q := Query{Contains: needle}
			f := q.rowFilter()
			got, err := decodeLogRowsWhere(bytes.NewReader(data), m, "", f)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for i := range got {
				found = found || got[i].Message == l.Message && got[i].Time.Equal(l.Time)
			}
			if !found {
				t.Fatalf("%q: the line %q at %v was not found in a format %d block", needle, l.Message, l.Time, format)
			}
			ruledIn++
		}
		if ruledIn > 300 {
			break
		}
	}
	// A word in no line rules every group out.
	q := Query{Contains: " zebra "}
	for gi := range m.Groups {
		if q.rowFilter().plan.mayMatch(m, &m.Groups[gi]) {
			t.Fatalf("group %d of the format %d fixture may hold a word no line has", gi, format)
		}
	}
	return data
}

// Blocks of format 1 (written before ids were split) stay readable: the
// fixtures were written by that code, and read here through every path a
// query takes (the whole block, a trace lookup, and the footer alone).
func TestFormat1BlocksStillRead(t *testing.T) {
	for _, kind := range []string{"logs", "spans"} {
		data, err := os.ReadFile("testdata/format1-" + kind + ".blk")
		if err != nil {
			t.Fatal(err)
		}
		if blockFormat(data) != 1 {
			t.Fatalf("%s fixture is not format 1", kind)
		}
		m, err := readBlockMeta(data)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if m.Format != 0 {
			t.Fatalf("%s: format %d in an old footer", kind, m.Format)
		}
		checkFormatRoundTrip(t, bytes.NewReader(data), m, kind)
	}
}

// New blocks are format 4 and read back identically.
func TestNewBlocksAreFormat4AndRoundTrip(t *testing.T) {
	for _, kind := range []string{"logs", "spans"} {
		m := &blockMeta{Name: "new-" + kind + ".blk", Partition: "20261120T100000Z"}
		var data []byte
		var err error
		if kind == "logs" {
			data, err = encodeLogBlock(formatFixtureLogs(), m)
		} else {
			data, err = encodeSpanBlock(formatFixtureSpans(), m)
		}
		if err != nil {
			t.Fatal(err)
		}
		if blockFormat(data) != 4 || m.Format != 4 {
			t.Fatalf("%s: new block has format %d (footer %d), want 4", kind, blockFormat(data), m.Format)
		}
		rm, err := readBlockMeta(data)
		if err != nil {
			t.Fatal(err)
		}
		checkFormatRoundTrip(t, bytes.NewReader(data), rm, kind)
	}
}

func checkFormatRoundTrip(t *testing.T, data io.ReaderAt, m *blockMeta, kind string) {
	t.Helper()
	if err := checkBlock(data, m); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	if kind == "spans" {
		want := formatFixtureSpans()
		got, err := decodeSpanBlock(data, m, "")
		if err != nil || len(got) != len(want) {
			t.Fatalf("spans: %d decoded, %v; want %d", len(got), err, len(want))
		}
		for i := range want {
			w, g := want[i], got[i]
			if g.TraceID != w.TraceID || g.SpanID != w.SpanID || g.ParentID != w.ParentID || g.Name != w.Name || !g.Start.Equal(w.Start) {
				t.Fatalf("span %d: got %+v, want %+v", i, g, *w)
			}
		}
		tr, err := decodeSpanBlock(data, m, traceID(7))
		if err != nil || len(tr) != 3 {
			t.Fatalf("spans of trace 7: %d, %v; want 3", len(tr), err)
		}
		return
	}
	want := formatFixtureLogs()
	got, err := decodeLogBlock(data, m)
	if err != nil || len(got) != len(want) {
		t.Fatalf("logs: %d decoded, %v; want %d", len(got), err, len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.TraceID != w.TraceID || g.SpanID != w.SpanID || g.Message != w.Message || g.Service != w.Service || !g.Time.Equal(w.Time) || g.MerchantID != w.MerchantID {
			t.Fatalf("line %d: got %+v, want %+v", i, g, *w)
		}
	}
	for _, id := range []string{traceID(100), "ABCDEF0123456789ABCDEF0123456789"} {
		n := 0
		for _, l := range want {
			if l.TraceID == id {
				n++
			}
		}
		tr, err := decodeLogRows(data, m, id)
		if err != nil || len(tr) != n || n == 0 {
			t.Fatalf("lines of trace %s: %d, %v; want %d", id, len(tr), err, n)
		}
	}
}

// A footer cannot be read with the other format's layout.
func TestFormatMagicMustMatchFooter(t *testing.T) {
	data, _ := os.ReadFile("testdata/format1-logs.blk")
	data = bytes.Clone(data)
	copy(data, blockMagic)
	if _, err := readBlockMeta(data); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("format 1 footer under a format 2 magic: %v", err)
	}
}

func TestSplitJoinIDsRoundTrip(t *testing.T) {
	for _, n := range []int{8, 16} {
		var e enc
		ids := []string{"", strings.Repeat("ab", n), strings.Repeat("ab", n), "x", strings.Repeat("cd", n), strings.Repeat("cd", n), strings.Repeat("cd", n), "", strings.Repeat("AB", n)}
		for _, id := range ids {
			putID(&e, id, n)
		}
		split := splitIDs(e.b, len(ids), n)
		joined, err := joinIDs(split, n)
		if err != nil || !bytes.Equal(joined, e.b) {
			t.Fatalf("n=%d: round trip: %v\n got %x\nwant %x", n, err, joined, e.b)
		}
		if len(split) >= len(e.b) {
			t.Errorf("n=%d: split column %d bytes, rows %d: repeats should be dropped", n, len(split), len(e.b))
		}
	}
}

// Real ids are random: format 1 paid a byte per id for its flags, and
// the full id again for each line of a request.
func TestSplitIDsCompressRandomIDsBetter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var traces, spans enc
	rows := 0
	for rows < groupRows {
		var tid [16]byte
		for i := range tid {
			tid[i] = byte(r.Uint32())
		}
		for range 1 + r.IntN(4) {
			putID(&traces, hex.EncodeToString(tid[:]), 16)
			putID(&spans, fmt.Sprintf("%016x", r.Uint64()), 8)
			rows++
		}
	}
	for _, c := range []struct {
		name string
		e    enc
		n    int
	}{{"trace", traces, 16}, {"span", spans, 8}} {
		v1, v2 := len(compress(c.e.b)), len(compress(splitIDs(c.e.b, rows, c.n)))
		t.Logf("%s: %.2f bytes per row in format 1, %.2f in format 2", c.name, float64(v1)/float64(rows), float64(v2)/float64(rows))
		if v2 >= v1 {
			t.Errorf("%s: format 2 is no smaller (%d vs %d bytes for %d rows)", c.name, v2, v1, rows)
		}
		if c.name == "span" && float64(v2) > float64(v1)-0.5*float64(rows) {
			t.Errorf("span: format 2 saves less than half a byte per row (%d vs %d bytes for %d rows)", v2, v1, rows)
		}
	}
}

func FuzzJoinIDs(f *testing.F) {
	var e enc
	for _, id := range []string{"", strings.Repeat("ab", 8), strings.Repeat("ab", 8), "x"} {
		putID(&e, id, 8)
	}
	f.Add(splitIDs(e.b, 4, 8))
	f.Add([]byte{3, 2, 1, 0})
	f.Add([]byte{1, 0, 200})
	f.Fuzz(func(t *testing.T, col []byte) {
		rows, err := joinIDs(col, 8)
		if err != nil {
			return
		}
		// What joins must walk cleanly and split back to the same rows.
		d := dec{b: rows}
		for len(d.b) > 0 && d.err == nil {
			getID(&d, 8)
		}
		if d.err != nil {
			t.Fatalf("joined column does not walk: %v", d.err)
		}
		again, err := joinIDs(splitIDs(rows, 0, 8), 8)
		if err != nil || !bytes.Equal(again, rows) {
			t.Fatalf("split(join(x)) differs: %v", err)
		}
	})
}

// randomIDLogs are lines with random ids like real ones, 1–4 per trace.
func randomIDLogs(n int) []*Log {
	r := rand.New(rand.NewPCG(3, 4))
	logs := genLogs(n)
	out := make([]*Log, n)
	var tid string
	for i := range logs {
		if i == 0 || r.IntN(3) == 0 {
			var b [16]byte
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			tid = hex.EncodeToString(b[:])
		}
		logs[i].TraceID, logs[i].SpanID = tid, fmt.Sprintf("%016x", r.Uint64())
		out[i] = &logs[i]
	}
	sortLogs(out)
	return out
}

// BenchmarkEncodeLogBlock is the flush's encoding cost per line; its
// split-ids sub-benchmark is the share format 2 adds to it.
func BenchmarkEncodeLogBlock(b *testing.B) {
	logs := randomIDLogs(16384)
	b.Run("block", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeLogBlock(logs, &blockMeta{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(logs)), "ns/line")
	})
	b.Run("skip-index", func(b *testing.B) {
		x := newGroupIndexer()
		for b.Loop() {
			for i, l := range logs {
				x.row(l)
				if i%groupRows == groupRows-1 {
					var g groupMeta
					x.finish(&g)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(logs)), "ns/line")
	})
	b.Run("split-ids", func(b *testing.B) {
		var traces, spans enc
		for _, l := range logs[:groupRows] {
			putID(&traces, l.TraceID, 16)
			putID(&spans, l.SpanID, 8)
		}
		for b.Loop() {
			splitIDs(traces.b, groupRows, 16)
			splitIDs(spans.b, groupRows, 8)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*groupRows), "ns/line")
	})
}
