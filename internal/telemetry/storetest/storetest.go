// Package storetest is the contract every telemetry.Store keeps: the same
// data appended, the same queries, counts and trace lookups, the same
// answers. The embedded store and the VictoriaLogs store both run it, so
// `pave logs`, `pave trace`, the query API and the viewer answer alike on
// either backend.
package storetest

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// Backend opens a fresh, empty store for one test.
type Backend func(t *testing.T) telemetry.Store

// Run runs the contract against stores from open.
func Run(t *testing.T, open Backend) {
	s := open(t)
	d := NewData(time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour))
	ctx := context.Background()
	// Two appends of each kind: a store may answer from several places
	// (memory and blocks for the embedded one).
	half := len(d.Logs) / 2
	for _, part := range [][]telemetry.Log{d.Logs[:half], d.Logs[half:]} {
		if err := s.AppendLogs(ctx, slices.Clone(part)); err != nil {
			t.Fatal(err)
		}
		if f, ok := s.(interface{ Flush(context.Context) error }); ok {
			if err := f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.AppendSpans(ctx, slices.Clone(d.Spans)); err != nil {
		t.Fatal(err)
	}
	t.Run("Query", func(t *testing.T) { testQueries(t, s, d) })
	t.Run("Paging", func(t *testing.T) { testPaging(t, s, d) })
	t.Run("Trace", func(t *testing.T) { testTrace(t, s, d) })
	t.Run("Count", func(t *testing.T) { testCount(t, s, d) })
	t.Run("Hostile", func(t *testing.T) { testHostile(t, s, d) })
}

// Data is the contract's data set: access and app lines over three
// services, lines sharing timestamps, an empty message, odd levels and
// attribute values, and two spans per trace.
type Data struct {
	T0    time.Time
	Logs  []telemetry.Log
	Spans []telemetry.Span
}

// TraceID and SpanID are the ids the data set uses.
func TraceID(i int) string { return fmt.Sprintf("%032x", i+1) }
func SpanID(i int) string  { return fmt.Sprintf("%016x", i+1) }

// NewData builds the data set from t0 on.
func NewData(t0 time.Time) *Data {
	d := &Data{T0: t0}
	const n = 600
	for i := 0; i < n; i++ {
		l := telemetry.Log{Time: t0.Add(time.Duration(i/3) * time.Second), Service: []string{"a", "b", "c"}[i%3], Version: "v1",
			TraceID: TraceID(i / 2), SpanID: SpanID(i), Cluster: "east", Datacenter: "dc1"}
		if i%2 == 0 {
			l.Kind, l.Level, l.Message = "access", "INFO", "GET /v1/pay 200"
			l.Method, l.Route, l.Status, l.DurationMS, l.Bytes = "GET", "/v1/pay", 200, 1.25, 512
			l.Caller, l.MerchantID = "web", fmt.Sprintf("m%d", i%50)
			if i%10 == 0 {
				l.Status, l.Message, l.Level = 500, "GET /v1/pay 500", "ERROR"
			}
		} else {
			l.Kind, l.Level, l.Message = "app", "WARN", fmt.Sprintf("charge took long attempt=%d", i)
			l.Attrs = telemetry.AttrsOf(map[string]string{"attempt": fmt.Sprint(i), "psp": "acme"})
			if i%7 == 0 {
				l.Cluster = "west"
				l.Attrs.Set("psp", "zeta pay")
			}
		}
		switch i {
		case 5:
			l.Message = "" // no message at all
		case 7:
			l.Level = "warning" // an SDK's spelling
		case 9:
			l.Attrs.Set("note", `quote " backslash \ star * pipe | newline`+"\n"+`ünïcode 🚀`)
			l.Message = `she said "hi" | sort by (x)`
		case 11:
			l.Level = "debug"
			l.Attrs.Set("http.route", "/v1/refund")
		}
		d.Logs = append(d.Logs, l)
	}
	for i := 0; i < n/2; i++ {
		st := t0.Add(time.Duration(2*i/3) * time.Second)
		d.Spans = append(d.Spans,
			telemetry.Span{TraceID: TraceID(i), SpanID: SpanID(2 * i), Name: "GET /v1/pay", Service: "a", Kind: "server",
				Start: st, End: st.Add(3 * time.Millisecond), Status: "ok", Attrs: telemetry.Attrs{{Key: "http.method", Value: "GET"}}},
			telemetry.Span{TraceID: TraceID(i), SpanID: SpanID(2*i + 1), ParentID: SpanID(2 * i), Name: "charge", Service: "b",
				Start: st.Add(time.Millisecond + time.Duration(i)*time.Nanosecond), End: st.Add(2 * time.Millisecond), Status: "error", StatusText: "psp refused"})
	}
	return d
}

// Matches is the reference: whether l passes q's conditions (the cursor
// and limit aside), as docs/telemetry.md defines them.
func Matches(q *telemetry.Query, l *telemetry.Log) bool {
	if !q.From.IsZero() && l.Time.Before(q.From) || !q.To.IsZero() && !l.Time.Before(q.To) {
		return false
	}
	if q.Service != "" && l.Service != q.Service || q.TraceID != "" && l.TraceID != q.TraceID {
		return false
	}
	if q.Level != "" && rank(l.Level) < rank(q.Level) {
		return false
	}
	for _, m := range q.Where {
		if (Field(l, m.Key) == m.Value) == m.Not {
			return false
		}
	}
	if q.Contains != "" && !strings.Contains(l.Message, q.Contains) &&
		!slices.ContainsFunc(l.Attrs, func(a telemetry.Attr) bool { return strings.Contains(a.Value, q.Contains) }) {
		return false
	}
	return q.Regex == nil || q.Regex.MatchString(l.Message)
}

func rank(level string) int {
	return map[string]int{"TRACE": 1, "DEBUG": 2, "INFO": 3, "WARN": 4, "ERROR": 5, "FATAL": 6}[telemetry.NormalizeLevel(level)]
}

// Field is a line's value of a column or attribute.
func Field(l *telemetry.Log, key string) string {
	switch key {
	case "service":
		return l.Service
	case "version":
		return l.Version
	case "level":
		return l.Level
	case "kind":
		return l.Kind
	case "trace_id":
		return l.TraceID
	case "span_id":
		return l.SpanID
	case "method":
		return l.Method
	case "route":
		return l.Route
	case "status":
		if l.Status == 0 {
			return ""
		}
		return strconv.Itoa(l.Status)
	case "caller":
		return l.Caller
	case "cluster":
		return l.Cluster
	case "datacenter":
		return l.Datacenter
	case "merchant_id":
		return l.MerchantID
	case "message":
		return l.Message
	}
	v, _ := l.Attrs.Get(key)
	return v
}

// Expect is the reference answer to q over logs: every match, newest first.
func Expect(q *telemetry.Query, logs []telemetry.Log) []telemetry.Log {
	var out []telemetry.Log
	for i := range logs {
		if Matches(q, &logs[i]) {
			out = append(out, logs[i])
		}
	}
	sortLogs(out)
	return out
}

// sortLogs orders lines newest first, then by the embedded store's tie
// break, then by span id: a total order on the data set.
func sortLogs(logs []telemetry.Log) {
	slices.SortStableFunc(logs, func(a, b telemetry.Log) int {
		return cmp.Or(b.Time.Compare(a.Time), strings.Compare(a.Service, b.Service),
			strings.Compare(a.SpanID, b.SpanID), strings.Compare(a.Message, b.Message))
	})
}

// key is what identifies a line and what must come back unchanged.
func key(l telemetry.Log) string {
	return fmt.Sprintf("%d|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%d|%g|%d|%s|%s|%s|%s|%v", l.Time.UnixNano(), l.Service, l.Version,
		l.Level, l.Message, l.Kind, l.TraceID, l.SpanID, l.Method, l.Route, l.Caller, l.Status, l.DurationMS, l.Bytes,
		l.Cluster, l.Datacenter, l.MerchantID, "", l.Attrs.Sorted())
}

func parse(t *testing.T, raw string, now time.Time) telemetry.Query {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := telemetry.ParseQuery(v, now)
	if err != nil {
		t.Fatalf("ParseQuery(%s): %v", raw, err)
	}
	return q
}

func checkSame(t *testing.T, what string, got, want []telemetry.Log) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i].Time.After(got[i-1].Time) {
			t.Fatalf("%s: not newest first at %d", what, i)
		}
	}
	g := slices.Clone(got)
	sortLogs(g)
	if len(g) != len(want) {
		t.Fatalf("%s: %d lines, want %d", what, len(g), len(want))
	}
	for i := range g {
		if key(g[i]) != key(want[i]) {
			t.Fatalf("%s: line %d:\n got %s\nwant %s", what, i, key(g[i]), key(want[i]))
		}
	}
}

func testQueries(t *testing.T, s telemetry.Store, d *Data) {
	now := d.T0.Add(time.Hour)
	from := url.QueryEscape(d.T0.Add(30 * time.Second).Format(time.RFC3339Nano))
	to := url.QueryEscape(d.T0.Add(90 * time.Second).Format(time.RFC3339Nano))
	for _, raw := range []string{
		"", "service=b", "level=warn", "level=error", "level=debug", "service=a&level=warn",
		"where=route%3D/v1/pay", "where=status%3D500", "where=merchant_id%3Dm20&where=route%3D/v1/pay",
		"where=psp%3Dacme", "where=psp%3Dzeta+pay", "where=status!%3D200", "where=cluster!%3Deast", "where=psp%3D",
		"where=psp!%3D", "where=message%3DGET+/v1/pay+500", "where=message%3D", "where=http.route%3D/v1/refund",
		"where=status%3D0500", "where=nonexistent%3Dx",
		"contains=attempt%3D7", "contains=acme", "contains=zeta+p", "contains=%F0%9F%9A%80", "contains=she+said+%22hi%22",
		"regex=attempt%3D1[0-9]$", "regex=%5E%24", "regex=(?i)get+/V1", "regex=x%3F",
		"trace_id=" + TraceID(7), "from=" + from, "from=" + from + "&to=" + to, "to=" + to + "&service=c",
		"since=10m", // nothing: the data is two hours old
		"service=a&where=kind%3Daccess&contains=500&level=error",
	} {
		q := parse(t, raw+"&limit=10000", now)
		res, err := s.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		checkSame(t, "query "+raw, res.Logs, Expect(&q, d.Logs))
		if res.Next != "" {
			t.Fatalf("query %s: a next page past every line: %q", raw, res.Next)
		}
	}
}

func testPaging(t *testing.T, s telemetry.Store, d *Data) {
	for _, raw := range []string{"limit=33", "limit=1&service=a&level=error", "limit=50&where=psp%3Dacme"} {
		q := parse(t, raw, d.T0.Add(time.Hour))
		want := Expect(&q, d.Logs)
		var got []telemetry.Log
		pages := 0
		for {
			res, err := s.Query(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Logs) > q.Limit {
				t.Fatalf("%s: page of %d lines", raw, len(res.Logs))
			}
			if len(got) > 0 && len(res.Logs) > 0 && res.Logs[0].Time.After(got[len(got)-1].Time) {
				t.Fatalf("%s: page %d starts newer than the last page ended", raw, pages)
			}
			got = append(got, res.Logs...)
			pages++
			if res.Next == "" {
				break
			}
			if pages > 1000 {
				t.Fatalf("%s: paging does not end", raw)
			}
			q.Cursor = res.Next
		}
		checkSame(t, "paging "+raw, got, want) // every line once
		if wantPages := (len(want) + q.Limit - 1) / q.Limit; pages < wantPages || pages > wantPages+1 {
			t.Fatalf("%s: %d pages for %d lines", raw, pages, len(want))
		}
	}
	if _, err := s.Query(context.Background(), telemetry.Query{Cursor: "nonsense"}); err == nil {
		t.Fatal("a bad cursor was accepted")
	}
}

func testTrace(t *testing.T, s telemetry.Store, d *Data) {
	for _, i := range []int{0, 4, 123, 299} {
		id := TraceID(i)
		res, err := s.Trace(context.Background(), strings.ToUpper(id))
		if err != nil {
			t.Fatal(err)
		}
		q := telemetry.Query{TraceID: id}
		wantLogs := Expect(&q, d.Logs)
		slices.Reverse(wantLogs) // oldest first
		if res.TraceID != id || len(res.Logs) != len(wantLogs) {
			t.Fatalf("trace %s: %d lines, want %d", id, len(res.Logs), len(wantLogs))
		}
		for j := range wantLogs {
			if key(res.Logs[j]) != key(wantLogs[j]) && !res.Logs[j].Time.Equal(wantLogs[j].Time) {
				t.Fatalf("trace %s: line %d: %s, want %s", id, j, key(res.Logs[j]), key(wantLogs[j]))
			}
		}
		var wantSpans []telemetry.Span
		for _, sp := range d.Spans {
			if sp.TraceID == id {
				wantSpans = append(wantSpans, sp)
			}
		}
		if len(res.Spans) != len(wantSpans) {
			t.Fatalf("trace %s: %d spans, want %d", id, len(res.Spans), len(wantSpans))
		}
		for j, sp := range res.Spans {
			w := wantSpans[j]
			if sp.SpanID != w.SpanID || sp.ParentID != w.ParentID || sp.Name != w.Name || sp.Service != w.Service ||
				!sp.Start.Equal(w.Start) || !sp.End.Equal(w.End) || sp.Status != w.Status || sp.StatusText != w.StatusText ||
				sp.Kind != w.Kind || fmt.Sprint(sp.Attrs.Sorted()) != fmt.Sprint(w.Attrs.Sorted()) {
				t.Fatalf("trace %s: span %d:\n got %+v\nwant %+v", id, j, sp, w)
			}
		}
	}
	res, err := s.Trace(context.Background(), TraceID(99999))
	if err != nil || len(res.Logs)+len(res.Spans) != 0 {
		t.Fatalf("unknown trace: %v, %d lines, %d spans", err, len(res.Logs), len(res.Spans))
	}
	if _, err := s.Trace(context.Background(), `0" OR *`); err == nil {
		t.Fatal("an invalid trace id was accepted")
	}
}

func testCount(t *testing.T, s telemetry.Store, d *Data) {
	c, ok := s.(telemetry.Counter)
	if !ok {
		t.Fatal("the store does not count (telemetry.Counter)")
	}
	for _, tc := range []struct{ by, raw string }{
		{"status", ""}, {"service", "level=warn"}, {"psp", ""}, {"level", "service=a"}, {"route", "where=status%3D500"},
		{"message", "service=c&level=warn"}, {"cluster", "contains=zeta"}, {"merchant_id", "since=10m"},
	} {
		q := parse(t, tc.raw, d.T0.Add(time.Hour))
		got, err := c.Count(context.Background(), q, tc.by)
		if err != nil {
			t.Fatalf("count by %s where %s: %v", tc.by, tc.raw, err)
		}
		want := map[string]int{}
		total := 0
		for _, l := range Expect(&q, d.Logs) {
			want[Field(&l, tc.by)]++
			total++
		}
		if got.Total != total || len(got.Counts) != len(want) {
			t.Fatalf("count by %s where %s: total %d in %d values, want %d in %d", tc.by, tc.raw, got.Total, len(got.Counts), total, len(want))
		}
		for i, vc := range got.Counts {
			if want[vc.Value] != vc.Count {
				t.Fatalf("count by %s where %s: %q: %d, want %d", tc.by, tc.raw, vc.Value, vc.Count, want[vc.Value])
			}
			if i > 0 && (got.Counts[i-1].Count < vc.Count || got.Counts[i-1].Count == vc.Count && got.Counts[i-1].Value > vc.Value) {
				t.Fatalf("count by %s: not most frequent first: %+v", tc.by, got.Counts)
			}
		}
	}
}

// Hostile values are values: quotes, LogsQL operators and pipes in a
// filter match lines holding those characters and nothing else.
func testHostile(t *testing.T, s telemetry.Store, d *Data) {
	for _, q := range []telemetry.Query{
		{Service: `a" OR service:*`},
		{Service: `a") OR ("`},
		{Where: []telemetry.Match{{Key: "route", Value: `x" | limit 1 | "`}}},
		{Where: []telemetry.Match{{Key: `psp" OR *:*`, Value: "acme"}}},
		{Where: []telemetry.Match{{Key: "note", Value: `quote " backslash \ star * pipe | newline` + "\n" + `ünïcode 🚀`}}},
		{Where: []telemetry.Match{{Key: "message", Value: `she said "hi" | sort by (x)`}}},
		{Contains: `" OR * | stats count() #`},
		{Contains: `" backslash \ star * pipe |`},
		{Contains: "*"},
		{Regex: regexp.MustCompile(`"|.*`)},
		{Regex: regexp.MustCompile(`\|\s*sort by \(x\)$`)},
		{Service: "a\x00b"},
	} {
		q.Limit = telemetry.MaxLimit
		res, err := s.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		checkSame(t, fmt.Sprintf("hostile %+v", q), res.Logs, Expect(&q, d.Logs))
	}
}
