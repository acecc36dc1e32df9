package telemetry

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// TestPagesMatchAFullScan: a query's pages, followed by their cursors to
// the end, are exactly its lines newest first, although each page skips
// the row groups and rows older than the page it has already filled.
func TestPagesMatchAFullScan(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 21))
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
	all, err := s.Query(ctx, Query{Limit: MaxLimit})
	if err != nil || len(all.Logs) != len(logs) {
		t.Fatalf("%d lines stored, %v; want %d", len(all.Logs), err, len(logs))
	}
	logs = all.Logs
	for n := 0; n < 80; n++ {
		q := randomQuery(r, logs)
		var want []Log
		for i := range logs {
			if q.matches(&logs[i]) {
				want = append(want, logs[i])
			}
		}
		sort.SliceStable(want, func(i, j int) bool { return newestFirst(&want[i], &want[j]) })
		q.Limit = []int{7, 50, 300}[r.IntN(3)]
		if len(want) < 50 {
			q.Limit = 1
		}
		var got []Log
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("%+v: paging does not end", q)
			}
			res, err := s.Query(ctx, q)
			if err != nil || len(res.Warnings) > 0 {
				t.Fatalf("%+v: %v %v", q, err, res.Warnings)
			}
			got = append(got, res.Logs...)
			if res.Next == "" {
				break
			}
			q.Cursor = res.Next
		}
		if len(got) != len(want) {
			t.Fatalf("%+v: %d lines over the pages, a full scan finds %d", q, len(got), len(want))
		}
		for i := range got {
			if lineKey(&got[i]) != lineKey(&want[i]) {
				t.Fatalf("%+v: line %d is %s, a full scan has %s", q, i, lineKey(&got[i]), lineKey(&want[i]))
			}
		}
	}
}

// TestPageBoundKeepsTheNewest: the floor is the oldest of the want newest
// times added, and none until want are in.
func TestPageBoundKeepsTheNewest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 200; n++ {
		want := 1 + r.IntN(20)
		p := &pageBound{want: want}
		var ts []int64
		for k := r.IntN(60); k > 0; k-- {
			v := r.Int64N(100)
			ts = append(ts, v)
			p.add(v)
			sorted := slices.Clone(ts)
			slices.Sort(sorted)
			slices.Reverse(sorted)
			wantFloor := int64(-1 << 63)
			if len(sorted) >= want {
				wantFloor = sorted[want-1]
			}
			if got := p.floor(); got != wantFloor {
				t.Fatalf("want %d of %v: floor %d, want %d", want, ts, got, wantFloor)
			}
		}
	}
}

// A page that the newest blocks fill, as their footers can tell, asks the
// blob store for nothing older: read-ahead used to fetch the matching row
// groups of every block before the page's floor stopped the reading.
func TestPageFetchesOnlyTheBlocksItNeeds(t *testing.T) {
	blob := &countingBlob{Blob: DirBlob{Root: t.TempDir()}}
	now := t0.Add(30 * time.Minute)
	s := openTest(t, t.TempDir(), func(o *Options) {
		o.Blob, o.ColdAfter, o.BlockRows = blob, time.Hour, 4096
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	const batches, per = 16, 1000
	var all []Log
	for b := 0; b < batches; b++ {
		var logs []Log
		for i := 0; i < per; i++ {
			n := b*per + i
			l := Log{Time: t0.Add(time.Duration(n) * 100 * time.Millisecond), Service: []string{"pay", "ledger"}[n%2],
				Status: []int{200, 500, 404}[n%3], Message: "m", TraceID: traceID(n)}
			logs = append(logs, l)
		}
		all = append(all, logs...)
		if err := s.AppendLogs(ctx, logs); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil { // a block per batch, in time order
			t.Fatal(err)
		}
	}
	now = t0.Add(5 * time.Hour)
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ColdBlocks < batches {
		t.Fatalf("%d cold blocks, want %d", st.ColdBlocks, batches)
	}
	q := Query{Service: "pay", Where: []Match{{Key: "status", Value: "500"}}, Limit: 20}
	var want []string
	for i := len(all) - 1; i >= 0 && len(want) < q.Limit; i-- {
		if q.matches(&all[i]) {
			want = append(want, lineKey(&all[i]))
		}
	}
	res, err := s.Query(ctx, q)
	if err != nil || len(res.Warnings) > 0 {
		t.Fatal(err, res.Warnings)
	}
	var got []string
	for i := range res.Logs {
		got = append(got, lineKey(&res.Logs[i]))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("page %v, want %v", got, want)
	}
	s.cacheWG.Wait()
	// The newest block holds 166 lines of pay with 500: it alone fills the
	// page. Its ranged read and its cache fill are two GETs; one block
	// more would be two more.
	if n := blob.gets.Load() + blob.ranges.Load(); n > 2 {
		t.Fatalf("%d GETs (%d whole, %d ranged) for a page the newest block fills", n, blob.gets.Load(), blob.ranges.Load())
	}
}
