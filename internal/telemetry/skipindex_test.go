package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var skipWords = []string{"charge", "authorized", "psp", "timeout", "fraud", "rule", "R-0007", "R-0017", "card", "déclinée",
	"x", "ab", "cache", "miss", "limit=5", "id:42", "a.b.c", "--", "", "naïve", "00070"}

// randomLogs are lines whose messages and attributes mix words, numbers
// and punctuation, so substrings cut words anywhere.
func randomLogs(r *rand.Rand, n int) []Log {
	out := make([]Log, n)
	levels := []string{"INFO", "WARN", "ERROR", "debug", ""}
	for i := range out {
		var msg strings.Builder
		for w := r.IntN(6); w >= 0; w-- {
			msg.WriteString(skipWords[r.IntN(len(skipWords))])
			msg.WriteString([]string{" ", "", ": ", "/", "-"}[r.IntN(5)])
		}
		l := Log{Time: t0.Add(time.Duration(r.IntN(7200)) * time.Second), Service: fmt.Sprintf("s%d", r.IntN(4)),
			Level: levels[r.IntN(len(levels))], Message: msg.String(), Status: []int{0, 200, 404, 500}[r.IntN(4)],
			Route: []string{"", "/v1/pay", "/healthz"}[r.IntN(3)], MerchantID: fmt.Sprintf("m%d", r.IntN(5)), TraceID: traceID(r.IntN(300)),
			Version: fmt.Sprintf("v%d", r.IntN(40))} // more versions than a dictionary keeps
		if r.IntN(3) == 0 {
			l.Attrs = Attrs{{"note", skipWords[r.IntN(len(skipWords))] + " " + skipWords[r.IntN(len(skipWords))]}, {"amount", fmt.Sprint(r.IntN(100000))}}
		}
		out[i] = l
	}
	return out
}

// randomQuery draws a query from the shapes users send: a substring of a
// stored message (cut anywhere), field filters, levels, time windows.
func randomQuery(r *rand.Rand, logs []Log) Query {
	var q Query
	if r.IntN(2) == 0 {
		src := logs[r.IntN(len(logs))].Message
		if a := logs[r.IntN(len(logs))].Attrs; len(a) > 0 && r.IntN(3) == 0 {
			src = a[0].Value
		}
		if r.IntN(5) == 0 {
			src = skipWords[r.IntN(len(skipWords))] + " rule R-00"
		}
		if len(src) > 0 {
			i := r.IntN(len(src))
			j := i + 1 + r.IntN(len(src)-i)
			q.Contains = src[i:j]
		}
	}
	if r.IntN(3) == 0 {
		q.Service = fmt.Sprintf("s%d", r.IntN(5))
	}
	if r.IntN(3) == 0 {
		q.Where = append(q.Where, Match{Key: "status", Value: []string{"", "200", "500", "0500", "404"}[r.IntN(5)], Not: r.IntN(4) == 0})
	}
	if r.IntN(4) == 0 {
		q.Where = append(q.Where, Match{Key: []string{"route", "version", "merchant_id", "note"}[r.IntN(4)],
			Value: []string{"/v1/pay", "v3", "m2", "", "x ab"}[r.IntN(5)], Not: r.IntN(3) == 0})
	}
	if r.IntN(4) == 0 {
		q.Level = []string{"WARN", "ERROR", "DEBUG"}[r.IntN(3)]
	}
	if r.IntN(2) == 0 {
		q.From = t0.Add(time.Duration(r.IntN(7200)) * time.Second)
		q.To = q.From.Add(time.Duration(1+r.IntN(3600)) * time.Second)
	}
	if r.IntN(10) == 0 {
		q.TraceID = traceID(r.IntN(300))
	}
	return q
}

func lineKey(l *Log) string {
	return fmt.Sprintf("%d|%s|%s|%s|%d|%v", l.Time.UnixNano(), l.Service, l.Message, l.TraceID, l.Status, l.Attrs)
}

// TestSkipIndexNeverDropsAMatch stores random lines in new blocks and
// asks random queries; every answer (lines and counts by several fields)
// must equal a full scan of the lines with the query's own test. The
// indexes may only save work.
func TestSkipIndexNeverDropsAMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 13))
	s := openTest(t, t.TempDir(), func(o *Options) { o.BlockRows = 2000 })
	logs := randomLogs(r, 9000)
	ctx := context.Background()
	for i := 0; i < len(logs); i += 1500 {
		if err := s.AppendLogs(ctx, slices.Clone(logs[i:min(i+1500, len(logs))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.HotBlocks < 4 {
		t.Fatalf("%d hot blocks: the test needs several", st.HotBlocks)
	}
	// The truth is what the store holds (it normalises levels, for one):
	// every line, read without a filter the indexes could use.
	all, err := s.Query(ctx, Query{Limit: MaxLimit})
	if err != nil || len(all.Logs) != len(logs) {
		t.Fatalf("%d lines stored, %v; want %d", len(all.Logs), err, len(logs))
	}
	logs = all.Logs
	skippedSome := false
	for n := 0; n < 400; n++ {
		q := randomQuery(r, logs)
		want := map[string]int{}
		wantBy := map[string]map[string]int{"status": {}, "level": {}, "note": {}}
		for i := range logs {
			if q.matches(&logs[i]) {
				want[lineKey(&logs[i])]++
				for by, m := range wantBy {
					m[fieldOf(&logs[i], by)]++
				}
			}
		}
		q.Limit = MaxLimit
		res, err := s.Query(ctx, q)
		if err != nil || len(res.Warnings) > 0 {
			t.Fatalf("%+v: %v %v", q, err, res.Warnings)
		}
		got := map[string]int{}
		for i := range res.Logs {
			got[lineKey(&res.Logs[i])]++
		}
		if len(res.Logs) != sum(want) || !mapsEqual(got, want) {
			t.Fatalf("query %+v: %d lines, a full scan finds %d", q, len(res.Logs), sum(want))
		}
		for by, m := range wantBy {
			c, err := s.Count(ctx, q, by)
			if err != nil {
				t.Fatal(err)
			}
			gotBy := map[string]int{}
			for _, vc := range c.Counts {
				gotBy[vc.Value] = vc.Count
			}
			if c.Total != sum(want) || !mapsEqual(gotBy, m) {
				t.Fatalf("count of %+v by %s: %v (total %d), a full scan gives %v", q, by, c.Counts, c.Total, m)
			}
		}
		plan := newGroupPlan(&q)
		for _, c := range s.blocksFor(func(*blockMeta) bool { return true }) {
			for gi := range c.meta.Groups {
				skippedSome = skippedSome || !plan.mayMatch(c.meta, &c.meta.Groups[gi])
			}
		}
	}
	if !skippedSome {
		t.Fatal("no query skipped a row group: the indexes do nothing")
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The indexes rule out what they should: a rare phrase, a field filter
// and a time window read only the groups that hold matches, and a count
// of whole groups reads no block at all.
func TestSkipIndexReadsOnlyMatchingGroups(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.BlockRows = 2048 })
	logs := genLogs(8192)
	logs[5000].Message = "card declined: fraud rule R-0007"
	ctx := context.Background()
	if err := s.AppendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.blocksRead.Load()
	res := mustQuery(t, s, "contains=fraud+rule+R-0007")
	if len(res.Logs) != 1 || s.blocksRead.Load()-before != 1 {
		t.Fatalf("rare phrase: %d lines from %d blocks, want 1 from 1", len(res.Logs), s.blocksRead.Load()-before)
	}
	// A substring cutting words at both ends still finds it.
	if res := mustQuery(t, s, "contains=aud+rule+R-00"); len(res.Logs) != 1 {
		t.Fatalf("substring cutting words: %d lines, want 1", len(res.Logs))
	}
	before = s.blocksRead.Load()
	c, err := s.Count(ctx, Query{From: t0, To: t0.Add(8192 * time.Second)}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 8192 || s.blocksRead.Load() != before {
		t.Fatalf("count of every line: total %d reading %d blocks, want 8192 from the footers alone", c.Total, s.blocksRead.Load()-before)
	}
	if c.Counts[0] != (ValueCount{"", 4096}) {
		t.Fatalf("counts %v: want the 4096 app lines (no status) first", c.Counts)
	}
	// A window cutting groups reads only the two groups at its edges.
	c, err = s.Count(ctx, Query{From: t0.Add(1000 * time.Second), To: t0.Add(7000 * time.Second)}, "status")
	if err != nil || c.Total != 6000 {
		t.Fatalf("count of a window: %v, %v; want 6000 lines", c, err)
	}
}

// Blocks of formats 1 and 2, written by older code, are still read and
// never skipped by indexes they do not have.
func TestFormat2BlocksStillRead(t *testing.T) {
	for _, kind := range []string{"logs", "spans"} {
		data, err := os.ReadFile("testdata/format2-" + kind + ".blk")
		if err != nil {
			t.Fatal(err)
		}
		if blockFormat(data) != 2 {
			t.Fatalf("%s fixture is not format 2", kind)
		}
		m, err := readBlockMeta(data)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if m.Format != 2 || m.skipIndexed() {
			t.Fatalf("%s: format %d", kind, m.Format)
		}
		checkFormatRoundTrip(t, bytes.NewReader(data), m, kind)
		if kind == "logs" {
			q := Query{Contains: "no such phrase anywhere", Where: []Match{{Key: "status", Value: "999"}}}
			if p := newGroupPlan(&q); !p.mayMatch(m, &m.Groups[0]) || p.allMatch(m, &m.Groups[0]) {
				t.Fatal("a format 2 group was judged by indexes it does not have")
			}
		}
	}
}

// FuzzNeedleKeys: a message holding the needle anywhere is never ruled
// out by the message filter, nor an attribute value by the attribute one.
func FuzzNeedleKeys(f *testing.F) {
	f.Add("card declined: fraud rule R-0007", 14, 31)
	f.Add("naïve-x ab:cd", 1, 9)
	f.Add("", 0, 0)
	f.Fuzz(func(t *testing.T, text string, i, j int) {
		if len(text) == 0 || i < 0 || j <= i || j > len(text) {
			return
		}
		needle := text[i:j]
		for _, asAttr := range []bool{false, true} {
			l := Log{Time: t0, Service: "s", Message: text}
			if asAttr {
				l.Message, l.Attrs = "", Attrs{{"k", text}}
			}
			x := newGroupIndexer()
			x.row(&l)
			var g groupMeta
			x.finish(&g)
			m := &blockMeta{Format: blockFormatNow, Kind: "logs"}
			q := Query{Contains: needle}
			if !newGroupPlan(&q).mayMatch(m, &g) {
				t.Fatalf("%q (attribute %v) holds %q but its group was ruled out", text, asAttr, needle)
			}
		}
	})
}

// FuzzReadBlockMeta: any bytes either fail with ErrCorrupt or give a
// footer whose blocks decode and plan without panicking.
func FuzzReadBlockMeta(f *testing.F) {
	for _, p := range []string{"testdata/format1-logs.blk", "testdata/format2-logs.blk", "testdata/format2-spans.blk", "testdata/format3-logs.blk", "testdata/format4-8bit-logs.blk"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	logs := genLogs(600)
	ptrs := make([]*Log, len(logs))
	for i := range logs {
		ptrs[i] = &logs[i]
	}
	b, err := encodeLogBlock(ptrs, &blockMeta{Name: "f.blk"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := readBlockMeta(data)
		if err != nil {
			return
		}
		q := Query{Contains: "rule R-0007", Service: "a", Where: []Match{{Key: "status", Value: "500"}}, Level: "WARN"}
		p := newGroupPlan(&q)
		p.anyGroup(m)
		for gi := range m.Groups {
			p.mayMatch(m, &m.Groups[gi])
			p.allMatch(m, &m.Groups[gi])
		}
		if m.Kind == "logs" {
			decodeLogRowsWhere(bytes.NewReader(data), m, "", q.rowFilter())
		} else {
			decodeSpanBlock(bytes.NewReader(data), m, "")
		}
	})
}

// Groups that hold the same words do not share their filters' false
// positives (format 4 salts each group's word filter with its first time).
// The case is the benchmark's: every group holding the seven common
// messages and one "fraud rule R-nnnn" line had the same filter bits, and
// "fraud rule R-0014" passed all 255 of them, so the rare phrase read 113
// blocks instead of 15.
func TestLikeGroupsFailApart(t *testing.T) {
	common := []string{"charge authorized", "cache miss", "retrying upstream call", "merchant limit checked",
		"ledger entry written", "psp timeout", "validation failed"}
	m := &blockMeta{Format: blockFormatNow, Kind: "logs"}
	q := Query{Contains: "fraud rule R-0014"}
	plan := newGroupPlan(&q)
	const groups = 400
	passed := 0
	for i := 0; i < groups; i++ {
		x := newGroupIndexer()
		at := t0.Add(time.Duration(i) * time.Minute)
		for j, msg := range append(common, fmt.Sprintf("card declined: fraud rule R-%04d", i%14)) {
			x.row(&Log{Time: at.Add(time.Duration(j) * time.Millisecond), Service: "s", Message: msg})
		}
		var g groupMeta
		x.finish(&g)
		if plan.mayMatch(m, &g) {
			passed++
		}
	}
	// About 2% false positives each (8 of 400); all 400 alike before.
	if passed > groups/10 {
		t.Fatalf("%d of %d groups with the same words pass a needle none holds: their false positives are not independent", passed, groups)
	}
}

// A rare phrase's words are mostly common ones (`fraud rule R-`): every
// group holding a like line has them, and only the phrase's number tells
// the groups apart, so each such group passes at the message filter's
// whole false-positive rate, and each pass is a read (from the blob store,
// a GET). The message filter keeps that rate near 0.3%: of 2000 groups
// holding `fraud rule R-nnnn` lines among 150 other words, at most 1%
// pass a number none holds (6 do; 46 did with the 8-bit filters before
// session 11).
func TestPhraseFalsePositivesAreRare(t *testing.T) {
	m := &blockMeta{Format: blockFormatNow, Kind: "logs"}
	q := Query{Contains: "fraud rule R-0099"}
	plan := newGroupPlan(&q)
	r := rand.New(rand.NewPCG(3, 4))
	const groups = 2000
	passed := 0
	for i := 0; i < groups; i++ {
		x := newGroupIndexer()
		at := t0.Add(time.Duration(i) * time.Minute)
		for j := 0; j < 50; j++ {
			msg := fmt.Sprintf("order %d w%05d v%05d", r.IntN(1e6), r.IntN(20000), r.IntN(20000))
			x.row(&Log{Time: at.Add(time.Duration(j) * time.Millisecond), Service: "s", Message: msg})
		}
		x.row(&Log{Time: at.Add(time.Second), Service: "s", Message: fmt.Sprintf("card declined: fraud rule R-%04d", i%20)})
		var g groupMeta
		x.finish(&g)
		if plan.mayMatch(m, &g) {
			passed++
		}
	}
	t.Logf("%d of %d groups pass a phrase none holds", passed, groups)
	if passed > groups/100 {
		t.Fatalf("%d of %d groups with like lines pass a phrase none holds (over 1%%)", passed, groups)
	}
}
