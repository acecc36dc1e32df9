package telemetry

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
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
