package telemetry

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"
)

// The memory table keeps batches in their WAL encoding: every field of
// every line and span reads back as it was appended, before and after a
// flush, the caller's slice is not kept (changing it later changes
// nothing stored), and the table takes far less memory than the decoded
// lines it holds.
func TestMemoryTableKeepsEveryFieldCompactly(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	ctx := context.Background()
	logs := genLogs(3000)
	for i := range logs {
		l := &logs[i]
		l.Method, l.Route, l.Status, l.DurationMS, l.Bytes = "POST", "/v1/pay/{id}", 500+i%3, float64(i)/8, int64(i)*11 // blocks keep durations to the microsecond
		l.Caller, l.MerchantID = "web", "m-"+l.SpanID[:4]
		if i%5 == 0 {
			l.Message = "quote \" and émoji 🙂 and \\n escape"
			l.Attrs = Attrs{{"psp", "acme"}, {"attempt", "2"}, {"", ""}}
		}
	}
	want := slices.Clone(logs)
	spans := []Span{{TraceID: logs[10].TraceID, SpanID: "00000000000000aa", ParentID: "00000000000000bb", Name: "charge",
		Service: "b", Version: "v2", Kind: "server", Start: t0.Add(9 * time.Second), End: t0.Add(12 * time.Second),
		Status: "error", StatusText: "psp timeout", Attrs: Attrs{{"k", "v"}}}}
	wantSpans := slices.Clone(spans)
	for i := 0; i < len(logs); i += 1000 {
		if err := s.AppendLogs(ctx, logs[i:i+1000]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AppendSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	// The caller's memory is its own again.
	for i := range logs {
		logs[i].Message, logs[i].Service = "overwritten", "x"
	}
	spans[0].Name = "overwritten"

	s.mu.RLock()
	held := 0
	for _, b := range s.active.logs {
		held += cap(b)
	}
	s.mu.RUnlock()
	if perLine := held / len(want); perLine == 0 || perLine > 200 {
		t.Errorf("the memory table holds %d bytes a line; a compact encoding takes well under 200", perLine)
	}

	check := func(when string) {
		t.Helper()
		res, err := s.Query(ctx, Query{Limit: len(want) + 1})
		if err != nil || len(res.Logs) != len(want) {
			t.Fatalf("%s: %d lines, %v; want %d", when, len(res.Logs), err, len(want))
		}
		got := map[string]Log{}
		for _, l := range res.Logs {
			got[l.SpanID] = l
		}
		for _, w := range want {
			g := got[w.SpanID]
			g.Time, w.Time = g.Time.UTC(), w.Time.UTC()
			if len(w.Attrs) == 0 {
				w.Attrs = nil
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("%s: line %s reads back as\n%+v\nwant\n%+v", when, w.SpanID, g, w)
			}
		}
		tr, err := s.Trace(ctx, want[10].TraceID)
		if err != nil || len(tr.Logs) != 2 || len(tr.Spans) != 1 {
			t.Fatalf("%s: trace %s: %d lines, %d spans, %v; want 2 and 1", when, want[10].TraceID, len(tr.Logs), len(tr.Spans), err)
		}
		sp := tr.Spans[0]
		sp.Start, sp.End = sp.Start.UTC(), sp.End.UTC()
		if !reflect.DeepEqual(sp, wantSpans[0]) {
			t.Fatalf("%s: span reads back as %+v, want %+v", when, sp, wantSpans[0])
		}
		c, err := s.Count(ctx, Query{}, "status")
		if err != nil || c.Total != len(want) {
			t.Fatalf("%s: count %+v %v, want %d", when, c, err, len(want))
		}
	}
	check("in memory")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check("flushed")
}
