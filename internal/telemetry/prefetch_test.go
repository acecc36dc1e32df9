package telemetry

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowBlob is a blob store whose Gets take a while (an S3 round trip), and
// which records how many ran at once.
type slowBlob struct {
	Blob
	delay     time.Duration
	mu        sync.Mutex
	now, most int
	gets      atomic.Int64
}

func (b *slowBlob) Get(ctx context.Context, key string) ([]byte, error) {
	b.gets.Add(1)
	b.mu.Lock()
	b.now++
	b.most = max(b.most, b.now)
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.now--; b.mu.Unlock() }()
	time.Sleep(b.delay)
	return b.Blob.Get(ctx, key)
}

// A query reading many cold blocks fetches a few ahead, in parallel, and
// answers exactly what it answers from the hot tier.
func TestColdQueryFetchesBlocksAhead(t *testing.T) {
	blob := &slowBlob{Blob: DirBlob{Root: t.TempDir()}, delay: 30 * time.Millisecond}
	now := t0.Add(30 * time.Minute)
	s := openTest(t, t.TempDir(), func(o *Options) {
		o.Blob, o.ColdAfter, o.BlockRows = blob, time.Hour, 500
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	if err := s.AppendLogs(ctx, genLogs(3000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	hot := mustQuery(t, s, "limit=10000&where=status%3D500")
	now = t0.Add(5 * time.Hour)
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ColdBlocks < 6 || st.HotBlocks != 0 {
		t.Fatalf("after the move: %+v; the test needs several cold blocks", st)
	}
	cold := mustQuery(t, s, "limit=10000&where=status%3D500")
	if len(cold.Logs) != len(hot.Logs) || len(cold.Warnings) > 0 {
		t.Fatalf("cold: %d lines %v, hot %d", len(cold.Logs), cold.Warnings, len(hot.Logs))
	}
	for i := range hot.Logs {
		if lineKey(&hot.Logs[i]) != lineKey(&cold.Logs[i]) {
			t.Fatalf("line %d differs: %+v vs %+v", i, cold.Logs[i], hot.Logs[i])
		}
	}
	s.cacheWG.Wait() // background cache fills may still be reading
	blob.mu.Lock()
	defer blob.mu.Unlock()
	if blob.most < 2 {
		t.Fatalf("at most %d Gets at once: the query fetched block after block", blob.most)
	}
	// The reader's own fetch, the read-ahead's, and the background fills
	// of the cache after ranged reads (coldread.go).
	if blob.most > prefetchAhead+1+cacheFills {
		t.Fatalf("%d Gets at once: read-ahead is bounded at %d, cache fills at %d", blob.most, prefetchAhead, cacheFills)
	}
}

// A count over cold blocks fetches only the blocks whose groups the window
// cuts, once: the next count reads them from the local cache.
func TestColdCountFetchesOnlyEdgeBlocksOnce(t *testing.T) {
	blob := &slowBlob{Blob: DirBlob{Root: t.TempDir()}}
	now := t0.Add(30 * time.Minute)
	s := openTest(t, t.TempDir(), func(o *Options) {
		o.Blob, o.ColdAfter, o.BlockRows = blob, time.Hour, 500
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	if err := s.AppendLogs(ctx, genLogs(3000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	q := Query{From: t0.Add(101 * time.Second), To: t0.Add(600 * time.Second)}
	hot, err := s.Count(ctx, q, "status")
	if err != nil {
		t.Fatal(err)
	}
	now = t0.Add(5 * time.Hour)
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	blocks := s.Stats().ColdBlocks
	for i := range 2 {
		before := blob.gets.Load()
		c, err := s.Count(ctx, q, "status")
		if err != nil || c.Total != 499 || c.Total != hot.Total || len(c.Warnings) > 0 {
			t.Fatalf("count %d from the blob store: %+v, %v; from the hot tier %+v", i, c, err, hot)
		}
		s.cacheWG.Wait() // the fetched blocks reach the cache
		gets := blob.gets.Load() - before
		if i == 0 && (gets == 0 || gets >= int64(blocks)) || i == 1 && gets != 0 {
			t.Fatalf("count %d fetched %d of %d cold blocks; want a few the first time, none the second", i, gets, blocks)
		}
	}
}

// rangeBlob is a blob store whose ranged GETs take a round trip; it
// records how many ran at once, and whether a whole-object GET (a cache
// fill) started while ranged GETs were still running.
type rangeBlob struct {
	Blob
	delay             time.Duration
	mu                sync.Mutex
	ranged, mostRange int
	wholeDuringRanges bool
}

func (b *rangeBlob) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b.mu.Lock()
	b.ranged++
	b.mostRange = max(b.mostRange, b.ranged)
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.ranged--; b.mu.Unlock() }()
	time.Sleep(b.delay)
	return b.Blob.GetRange(ctx, key, off, n)
}

func (b *rangeBlob) Get(ctx context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	if b.ranged > 0 {
		b.wholeDuringRanges = true
	}
	b.mu.Unlock()
	return b.Blob.Get(ctx, key)
}

// A rare phrase whose lines lie in many cold blocks asks for all their
// row groups at once (more than the 16 blocks a query used to look
// ahead), and the whole blocks follow into the cache only after the
// answer, never beside the query's own ranged GETs.
func TestRarePhraseAsksForAllItsBlocksAtOnce(t *testing.T) {
	blob := &rangeBlob{Blob: DirBlob{Root: t.TempDir()}, delay: 40 * time.Millisecond}
	now := t0.Add(30 * time.Minute)
	s := openTest(t, t.TempDir(), func(o *Options) {
		o.Blob, o.ColdAfter, o.BlockRows = blob, time.Hour, 2048
		o.Now = func() time.Time { return now }
		o.NoNeedles = true // the blob store's reads are what this test checks
	})
	ctx := context.Background()
	logs := genLogs(24 * 2048)
	for i := 1000; i < len(logs); i += 2048 {
		logs[i].Message = "card declined: fraud rule R-0007"
	}
	for i := 0; i < len(logs); i += 4096 {
		if err := s.AppendLogs(ctx, slices.Clone(logs[i:min(i+4096, len(logs))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(20 * time.Hour) // the lines are one a second: 13.7 hours
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ColdBlocks < 20 || st.HotBlocks != 0 {
		t.Fatalf("after the move: %+v; the test needs more than 16 cold blocks", st)
	}
	res, err := s.Query(ctx, Query{Contains: "fraud rule R-0007", Limit: 1000})
	if err != nil || len(res.Logs) != 24 || len(res.Warnings) > 0 {
		t.Fatalf("rare phrase: %d lines, %v %v; want 24", len(res.Logs), err, res.Warnings)
	}
	s.cacheWG.Wait()
	blob.mu.Lock()
	defer blob.mu.Unlock()
	if blob.mostRange <= 16 {
		t.Errorf("at most %d ranged GETs at once for a phrase in 24 blocks: the query waited for them in rounds", blob.mostRange)
	}
	if blob.wholeDuringRanges {
		t.Error("a whole-block GET for the cache ran beside the query's ranged GETs")
	}
}
