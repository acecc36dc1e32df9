package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func openTest(t *testing.T, dir string, mod func(*Options)) *Embedded {
	t.Helper()
	o := Options{Dir: dir, FlushInterval: time.Hour, MaintainEvery: -1, ColdAfter: -1, Now: func() time.Time { return t0.Add(2 * time.Hour) }}
	if mod != nil {
		mod(&o)
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func traceID(i int) string { return fmt.Sprintf("%032x", i+1) }
func spanID(i int) string  { return fmt.Sprintf("%016x", i+1) }

// genLogs makes n access+app lines over services a, b, c, one trace per
// two lines, one second apart from t0.
func genLogs(n int) []Log {
	out := make([]Log, n)
	for i := range out {
		l := Log{Time: t0.Add(time.Duration(i) * time.Second), Service: []string{"a", "b", "c"}[i%3], Version: "v1",
			TraceID: traceID(i / 2), SpanID: spanID(i), Cluster: "east", Datacenter: "dc1"}
		if i%2 == 0 {
			l.Kind, l.Level, l.Message = "access", "INFO", "GET /v1/pay 200"
			l.Method, l.Route, l.Status, l.DurationMS, l.Bytes = "GET", "/v1/pay", 200, 1.25, 512
			l.Caller, l.MerchantID = "web", fmt.Sprintf("m%d", i%50)
			if i%10 == 0 {
				l.Status, l.Message, l.Level = 500, "GET /v1/pay 500", "ERROR"
			}
		} else {
			l.Kind, l.Level, l.Message = "app", "WARN", fmt.Sprintf("charge took long attempt=%d", i)
			l.Attrs = AttrsOf(map[string]string{"attempt": fmt.Sprint(i), "psp": "acme"})
		}
		out[i] = l
	}
	return out
}

func mustQuery(t *testing.T, s Store, raw string) Result {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseQuery(v, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatalf("ParseQuery(%s): %v", raw, err)
	}
	res, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAppendQueryBeforeAndAfterFlushAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(o *Options) { o.BlockRows = 100 })
	ctx := context.Background()
	logs := genLogs(1000)
	if err := s.AppendLogs(ctx, logs[:600]); err != nil {
		t.Fatal(err)
	}
	check := func(s Store, stage string, total int) {
		t.Helper()
		res := mustQuery(t, s, "limit=10000")
		if len(res.Logs) != total {
			t.Fatalf("%s: %d lines, want %d", stage, len(res.Logs), total)
		}
		for i := 1; i < len(res.Logs); i++ {
			if res.Logs[i].Time.After(res.Logs[i-1].Time) {
				t.Fatalf("%s: not newest first at %d", stage, i)
			}
		}
		res = mustQuery(t, s, "service=b&level=error&limit=10000")
		for _, l := range res.Logs {
			if l.Service != "b" || l.Level != "ERROR" || l.Status != 500 {
				t.Fatalf("%s: service=b level=error returned %+v", stage, l)
			}
		}
		if len(res.Logs) == 0 {
			t.Fatalf("%s: no errors of b found", stage)
		}
		res = mustQuery(t, s, "where=route%3D/v1/pay&where=merchant_id%3Dm20&limit=10000")
		for _, l := range res.Logs {
			if l.MerchantID != "m20" || l.Route != "/v1/pay" || l.Caller != "web" || l.DurationMS != 1.25 || l.Bytes != 512 {
				t.Fatalf("%s: where returned %+v", stage, l)
			}
		}
		if len(res.Logs) == 0 {
			t.Fatalf("%s: merchant m20 not found", stage)
		}
		res = mustQuery(t, s, "contains=attempt%3D7&where=psp%3Dacme")
		if len(res.Logs) == 0 || !strings.Contains(res.Logs[0].Message, "attempt=7") {
			t.Fatalf("%s: contains found %v", stage, res.Logs)
		}
		res = mustQuery(t, s, "regex=attempt%3D1[0-9]$")
		if len(res.Logs) != 5 { // 11, 13, 15, 17, 19
			t.Fatalf("%s: regex found %d lines, want 5", stage, len(res.Logs))
		}
	}
	check(s, "in memory", 600)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.HotBlocks < 6 || st.MemoryLines != 0 {
		t.Fatalf("after flush: %+v", st)
	}
	if err := s.AppendLogs(ctx, logs[600:]); err != nil {
		t.Fatal(err)
	}
	check(s, "blocks + memory", 1000)
	s.Close()
	s2 := openTest(t, dir, func(o *Options) { o.BlockRows = 100 })
	check(s2, "reopened", 1000)
}

func TestCursorPagingVisitsEveryLineOnce(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.BlockRows = 64 })
	logs := genLogs(500)
	for i := range logs { // many equal times, to test the tie-break
		logs[i].Time = t0.Add(time.Duration(i/7) * time.Second)
	}
	ctx := context.Background()
	if err := s.AppendLogs(ctx, logs[:300]); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, logs[300:]); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	cursor := ""
	pages := 0
	for {
		q := Query{Limit: 33, Cursor: cursor}
		res, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range res.Logs {
			seen[l.SpanID]++
		}
		pages++
		if res.Next == "" {
			break
		}
		cursor = res.Next
		if pages > 100 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 500 {
		t.Fatalf("paging saw %d distinct lines, want 500", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("line %s seen %d times", id, n)
		}
	}
}

func TestTraceLookupReadsOnlyMatchingBlocks(t *testing.T) {
	s := openTest(t, t.TempDir(), func(o *Options) { o.BlockRows = 200 })
	ctx := context.Background()
	logs := genLogs(4000)
	var spans []Span
	for i := 0; i < 2000; i++ {
		st := t0.Add(time.Duration(2*i) * time.Second)
		spans = append(spans, Span{TraceID: traceID(i), SpanID: spanID(2 * i), Name: "GET /v1/pay", Service: "a", Start: st, End: st.Add(3 * time.Millisecond), Status: "ok"},
			Span{TraceID: traceID(i), SpanID: spanID(2*i + 1), ParentID: spanID(2 * i), Name: "charge", Service: "b", Start: st.Add(time.Millisecond), End: st.Add(2 * time.Millisecond)})
	}
	if err := s.AppendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	blocks := s.Stats().HotBlocks
	before := s.Stats().BlocksRead
	res, err := s.Trace(ctx, traceID(1234))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 2 || len(res.Spans) != 2 || res.Spans[1].ParentID != res.Spans[0].SpanID {
		t.Fatalf("trace: %d logs, %d spans: %+v", len(res.Logs), len(res.Spans), res)
	}
	read := s.Stats().BlocksRead - before
	if read > 4 || blocks < 20 {
		t.Fatalf("trace lookup read %d of %d blocks; the bloom filters should rule out almost all", read, blocks)
	}
	if _, err := s.Trace(ctx, "not-hex"); err == nil {
		t.Fatal("invalid trace id accepted")
	}
}

func TestCorruptBlockIsReportedNeverServed(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	ctx := context.Background()
	if err := s.AppendLogs(ctx, genLogs(300)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	blocks, _ := filepath.Glob(filepath.Join(dir, "hot", "*", "*logs.blk"))
	if len(blocks) != 1 {
		t.Fatalf("want one block, got %v", blocks)
	}
	data, _ := os.ReadFile(blocks[0])
	data[len(blockMagic)+20] ^= 0xff // inside the first column
	os.WriteFile(blocks[0], data, 0o600)

	s2 := openTest(t, dir, nil)
	res := mustQuery(t, s2, "limit=1000")
	if len(res.Logs) != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "checksum") {
		t.Fatalf("corrupt block: %d lines served, warnings %v", len(res.Logs), res.Warnings)
	}
	if st := s2.Stats(); len(st.Corrupt) != 1 {
		t.Fatalf("Stats().Corrupt = %v", st.Corrupt)
	}
	s2.Close()

	// A truncated block is caught when the store opens.
	os.WriteFile(blocks[0], data[:len(data)/2], 0o600)
	s3 := openTest(t, dir, nil)
	if st := s3.Stats(); len(st.Corrupt) != 1 || st.HotBlocks != 0 {
		t.Fatalf("truncated block: %+v", st)
	}
	if res := mustQuery(t, s3, "limit=1000"); len(res.Logs) != 0 {
		t.Fatal("truncated block served")
	}
}

func TestCompactionAndRetentionPerService(t *testing.T) {
	dir := t.TempDir()
	now := t0.Add(20 * time.Minute)
	s := openTest(t, dir, func(o *Options) {
		o.BlockRows = 1000
		o.Retention = map[string]time.Duration{"a": 90 * time.Minute}
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	logs := genLogs(900) // 15 minutes from t0
	for i := 0; i < 3; i++ {
		if err := s.AppendLogs(ctx, logs[i*300:(i+1)*300]); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Stats().HotBlocks; got != 3 {
		t.Fatalf("%d blocks before compaction, want 3", got)
	}
	if n := len(mustQuery(t, s, "limit=10000").Logs); n != 900 {
		t.Fatalf("%d lines before retention, want 900", n)
	}
	now = t0.Add(110 * time.Minute) // all of a's lines are now older than 90 minutes
	if n := len(mustQuery(t, s, "service=a&limit=10000").Logs); n != 0 {
		t.Fatalf("service a past retention still returns %d lines", n)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.HotBlocks != 1 || st.Records != 600 {
		t.Fatalf("after compaction: %d blocks, %d records; want 1 block of 600 (b and c)", st.HotBlocks, st.Records)
	}
	s.Close()
	s2 := openTest(t, dir, func(o *Options) { o.Now = func() time.Time { return now } })
	if n := len(mustQuery(t, s2, "limit=10000").Logs); n != 600 {
		t.Fatalf("reopened after compaction: %d lines, want 600", n)
	}
}

func TestCompactionCrashKeepsEachRecordOnce(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	ctx := context.Background()
	logs := genLogs(200)
	for i := 0; i < 2; i++ {
		s.AppendLogs(ctx, logs[i*100:(i+1)*100])
		s.Flush(ctx)
	}
	before, _ := filepath.Glob(filepath.Join(dir, "hot", "*", "*.blk"))
	saved := map[string][]byte{}
	for _, p := range before {
		saved[p], _ = os.ReadFile(p)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Put the inputs back: as if the crash came after the merged block was
	// durable but before the inputs were deleted.
	for p, b := range saved {
		os.WriteFile(p, b, 0o600)
	}
	s2 := openTest(t, dir, nil)
	if n := len(mustQuery(t, s2, "limit=10000").Logs); n != 200 {
		t.Fatalf("%d lines after an interrupted compaction, want 200", n)
	}
}

// The cold tier's guarantees are the store's, not a provider's: the same
// move, crash windows and cached reads run against every Blob provider.
func TestColdTierMoveQueryAndCrashWindows(t *testing.T) {
	for _, p := range blobProviders() {
		t.Run(p.name, func(t *testing.T) { testColdTier(t, p.open(t)) })
	}
}

func testColdTier(t *testing.T, blob Blob) {
	dir := t.TempDir()
	now := t0.Add(30 * time.Minute)
	mod := func(o *Options) {
		o.Blob = blob
		o.ColdAfter = time.Hour
		o.Now = func() time.Time { return now }
	}
	s := openTest(t, dir, mod)
	ctx := context.Background()
	logs := genLogs(600) // partition 10:00
	late := genLogs(10)
	for i := range late {
		late[i].Time = t0.Add(3 * time.Hour) // partition 13:00, stays hot
		late[i].TraceID = traceID(9000 + i)
	}
	s.AppendLogs(ctx, logs)
	s.AppendLogs(ctx, late)
	s.AppendSpans(ctx, []Span{{TraceID: traceID(5), SpanID: spanID(1), Name: "x", Service: "a", Start: t0.Add(10 * time.Second), End: t0.Add(11 * time.Second)}})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ColdBlocks != 0 {
		t.Fatalf("moved a partition younger than ColdAfter: %+v", st)
	}
	now = t0.Add(3 * time.Hour)
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.ColdBlocks != 2 || st.HotBlocks != 1 || st.ColdBytes == 0 {
		t.Fatalf("after move: %+v", st)
	}
	if n := len(mustQuery(t, s, "limit=10000").Logs); n != 610 {
		t.Fatalf("%d lines across tiers, want 610", n)
	}
	res, err := s.Trace(ctx, traceID(5))
	if err != nil || len(res.Logs) != 2 || len(res.Spans) != 1 {
		t.Fatalf("cold trace: %v %+v", err, res)
	}
	s.cacheWG.Wait() // the local copies are written in the background
	if s.Stats().CacheBytes == 0 {
		t.Fatal("cold reads were not cached locally")
	}
	// A damaged cached copy is dropped and fetched again, not reported as
	// a corrupt block.
	cached, _ := filepath.Glob(filepath.Join(dir, "cache", "*", "*logs.blk"))
	if len(cached) == 0 {
		t.Fatal("no cached cold block")
	}
	b, _ := os.ReadFile(cached[0])
	b[len(blockMagic)+3] ^= 0xff
	os.WriteFile(cached[0], b, 0o600)
	if res := mustQuery(t, s, "limit=10000"); len(res.Logs) != 610 || len(res.Warnings) != 0 {
		t.Fatalf("damaged cache: %d lines, warnings %v", len(res.Logs), res.Warnings)
	}
	s.Close()

	// Crash window 1: manifest uploaded, no local MOVED record yet. Put the
	// hot files back: the hot copy must be the only one served.
	s2 := openTest(t, dir, mod)
	if n := len(mustQuery(t, s2, "limit=10000").Logs); n != 610 {
		t.Fatalf("reopened: %d lines, want 610", n)
	}
	s2.Close()
	part := "20261120T100000Z"
	man, err := blob.Get(ctx, part+"/MANIFEST.json")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	json.Unmarshal(man, &m)
	os.MkdirAll(filepath.Join(dir, "hot", part), 0o700)
	for _, b := range m.Blocks {
		data, err := blob.Get(ctx, part+"/"+b.Name)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "hot", part, b.Name), data, 0o600)
	}
	s3 := openTest(t, dir, mod)
	st = s3.Stats()
	if n := len(mustQuery(t, s3, "limit=10000").Logs); n != 610 || st.ColdBlocks != 0 {
		t.Fatalf("interrupted move: %d lines (want 610), %d cold blocks (want 0: the hot copy counts)", n, st.ColdBlocks)
	}
	// Finishing the move again works and still counts each line once.
	if err := s3.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(mustQuery(t, s3, "limit=10000").Logs); n != 610 {
		t.Fatalf("after re-move: %d lines, want 610", n)
	}
	s3.Close()

	// Crash window 2: MOVED written, hot files not yet deleted.
	os.MkdirAll(filepath.Join(dir, "hot", part), 0o700)
	var ml movedList
	for _, b := range m.Blocks {
		data, err := blob.Get(ctx, part+"/"+b.Name)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "hot", part, b.Name), data, 0o600)
		ml.Blocks = append(ml.Blocks, b.Name)
	}
	mb, _ := json.Marshal(ml)
	os.WriteFile(filepath.Join(dir, "hot", part, "MOVED"), mb, 0o600)
	s4 := openTest(t, dir, mod)
	if n := len(mustQuery(t, s4, "limit=10000").Logs); n != 610 {
		t.Fatalf("MOVED recorded: %d lines, want 610", n)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "hot", part, "*.blk")); len(left) != 0 {
		t.Fatalf("moved blocks left in the hot tier: %v", left)
	}
}

func TestDirBlobRejectsTraversal(t *testing.T) {
	b := DirBlob{Root: t.TempDir()}
	for _, k := range []string{"../x", "/etc/passwd", "a/../../b", "a//b", ""} {
		if err := b.Put(context.Background(), k, []byte("x")); err == nil {
			t.Errorf("Put(%q) accepted", k)
		}
	}
	if _, err := b.Get(context.Background(), "nope/x"); !errors.Is(err, ErrBlobNotFound) {
		t.Errorf("Get of a missing key: %v", err)
	}
}
