package telemetry

import (
	"bytes"
	"net/url"
	"testing"
	"time"
)

// TestRowFilterKeepsEveryRowTheQueryKeeps decodes a block with each
// query's row filter and without, and requires the same matching lines:
// the filter may only save work, never drop a line.
func TestRowFilterKeepsEveryRowTheQueryKeeps(t *testing.T) {
	src := genLogs(3000)
	src[17].Attrs = AttrsOf(map[string]string{"note": "needle in an attribute"})
	src[2100].Message = "a needle in the message"
	ptrs := make([]*Log, len(src))
	for i := range src {
		ptrs[i] = &src[i]
	}
	m := &blockMeta{Name: "rows.blk", Partition: "20261120T100000Z"}
	data, err := encodeLogBlock(ptrs, m)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := readBlockMeta(data)
	if err != nil {
		t.Fatal(err)
	}
	all, err := decodeLogRows(bytes.NewReader(data), rm, "")
	if err != nil {
		t.Fatal(err)
	}
	selective := map[string]bool{"where=status%3D500&service=a": true, "where=status%3D500": true, "contains=needle": true}
	from, to := t0.Add(500*time.Second).Format(time.RFC3339), t0.Add(2500*time.Second).Format(time.RFC3339)
	for _, raw := range []string{
		"where=status%3D500&service=a",
		"where=status%3D500",
		"where=status%3D0500", // matches nothing: status prints as 500
		"where=status!%3D500&service=b",
		"contains=needle",
		"contains=attempt%3D11",
		"service=c&from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(to),
		"where=route%3D%2Fv1%2Fpay&contains=500",
		"trace_id=" + traceID(40),
	} {
		v, _ := url.ParseQuery(raw)
		q, err := ParseQuery(v, t0.Add(2*time.Hour))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		q.From = time.Time{}
		if v.Get("from") != "" {
			q.From, _ = time.Parse(time.RFC3339, from)
		}
		var want []Log
		for i := range all {
			if q.matches(&all[i]) && (q.TraceID == "" || all[i].TraceID == q.TraceID) {
				want = append(want, all[i])
			}
		}
		got, err := decodeLogRowsWhere(bytes.NewReader(data), rm, q.TraceID, q.rowFilter())
		if err != nil {
			t.Fatal(err)
		}
		var kept []Log
		for i := range got {
			if q.matches(&got[i]) {
				kept = append(kept, got[i])
			}
		}
		if len(kept) != len(want) {
			t.Fatalf("%s: %d lines with the row filter, %d without", raw, len(kept), len(want))
		}
		for i := range want {
			if kept[i].SpanID != want[i].SpanID || kept[i].Message != want[i].Message {
				t.Fatalf("%s: line %d is %+v, want %+v", raw, i, kept[i], want[i])
			}
		}
		if selective[raw] && len(got) > len(want)+len(all)/100 {
			t.Errorf("%s: the row filter let %d lines through for %d matches: it saves nothing", raw, len(got), len(want))
		}
	}
}
