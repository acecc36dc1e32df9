package telemetry

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingBlob counts what crosses the Blob seam: whole-object GETs,
// ranged GETs, and their bytes; asked counts both kinds of GET sent with a
// context from askedBy, which a query passes on to its own reads and
// read-ahead but not to the cache fills it starts in the background: a
// fill may reach the blob store before or after the query returns.
type countingBlob struct {
	Blob
	gets, ranges, bytes, rangeBytes, asked atomic.Int64
}

type askedKey struct{}

// askedBy marks ctx so that the GETs sent with it count as asked.
func askedBy(ctx context.Context) context.Context { return context.WithValue(ctx, askedKey{}, true) }

func (b *countingBlob) count(ctx context.Context) {
	if ctx.Value(askedKey{}) != nil {
		b.asked.Add(1)
	}
}

func (b *countingBlob) Get(ctx context.Context, key string) ([]byte, error) {
	d, err := b.Blob.Get(ctx, key)
	b.count(ctx)
	b.gets.Add(1)
	b.bytes.Add(int64(len(d)))
	return d, err
}

func (b *countingBlob) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	d, err := b.Blob.GetRange(ctx, key, off, n)
	b.count(ctx)
	b.ranges.Add(1)
	b.bytes.Add(int64(len(d)))
	b.rangeBytes.Add(int64(len(d)))
	return d, err
}

func (b *countingBlob) read() int64 { return b.bytes.Load() }

// Queries over a cold tier on a real S3 server (and a directory) answer
// exactly what a full scan of the lines answers, while waiting only for
// the row groups the skip indexes leave open: a rare phrase and a trace
// lookup read a small part of the blocks they touch, with ranged GETs;
// the whole blocks follow into the local cache in the background, and the
// same query again reads nothing from the blob store.
func TestColdReadsFetchOnlyTheRowGroupsAQueryNeeds(t *testing.T) {
	for _, p := range blobProviders() {
		t.Run(p.name, func(t *testing.T) {
			blob := &countingBlob{Blob: p.open(t)}
			now := t0.Add(30 * time.Minute)
			s := openTest(t, t.TempDir(), func(o *Options) {
				o.Blob, o.ColdAfter, o.BlockRows = blob, time.Hour, 8192
				// Ranged reads are what this test checks: without needle
				// files the rare phrase goes to the blob store.
				o.NoNeedles = true
				o.Now = func() time.Time { return now }
			})
			ctx := context.Background()
			r := rand.New(rand.NewPCG(7, 70))
			logs := randomLogs(r, 12000)
			rare := "payout held: quokka check Q-4242"
			logs[7001].Message = rare
			// A trace of two lines far apart (other traces span every group).
			logs[7001].TraceID, logs[300].TraceID = "feedfacefeedfacefeedfacefeedface", "feedfacefeedfacefeedfacefeedface"
			for i := 0; i < len(logs); i += 3000 {
				if err := s.AppendLogs(ctx, slices.Clone(logs[i:i+3000])); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			all, err := s.Query(ctx, Query{Limit: MaxLimit + 2000})
			if err != nil || len(all.Logs) != len(logs) {
				t.Fatalf("%d lines stored, %v; want %d", len(all.Logs), err, len(logs))
			}
			now = t0.Add(5 * time.Hour)
			if err := s.MoveCold(ctx); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.HotBlocks != 0 || st.ColdBlocks < 2 {
				t.Fatalf("after the move: %+v; the test needs every block cold", st)
			}
			// Each query starts with an empty local cache, so it reads the
			// blob store; it returns what a full scan of the lines returns.
			fresh := func() {
				s.cacheWG.Wait()
				if err := os.RemoveAll(s.cache); err != nil {
					t.Fatal(err)
				}
			}
			scan := func(q Query) []string {
				var want []string
				for i := range all.Logs {
					if q.matches(&all.Logs[i]) {
						want = append(want, lineKey(&all.Logs[i]))
					}
				}
				sort.Strings(want)
				return want
			}
			ask := func(q Query) (keys []string, ranged int64) {
				fresh()
				before := blob.rangeBytes.Load()
				q.Limit = len(logs) // every match: the comparison is with all of a scan's
				res, err := s.Query(ctx, q)
				if err != nil || len(res.Warnings) > 0 {
					t.Fatalf("%+v: %v %v", q, err, res.Warnings)
				}
				for i := range res.Logs {
					keys = append(keys, lineKey(&res.Logs[i]))
				}
				sort.Strings(keys)
				return keys, blob.rangeBytes.Load() - before
			}

			got, rareBytes := ask(Query{Contains: "quokka check Q-4242"})
			if want := scan(Query{Contains: "quokka check Q-4242"}); len(got) != 1 || !reflect.DeepEqual(got, want) {
				t.Fatalf("rare phrase: %v, a full scan finds %v", got, want)
			}
			if blob.ranges.Load() == 0 || rareBytes == 0 || rareBytes*8 > st.ColdBytes {
				t.Fatalf("rare phrase read %d of %d cold bytes with %d ranged GETs: want a few row groups",
					rareBytes, st.ColdBytes, blob.ranges.Load())
			}
			s.cacheWG.Wait() // the block follows into the local cache
			before := blob.read()
			again, err := s.Query(ctx, Query{Contains: "quokka check Q-4242", Limit: 10})
			if err != nil || len(again.Logs) != 1 || blob.read() != before {
				t.Fatalf("the same query again: %d lines, %v, %d bytes from the blob store; want 1 line from the local cache",
					len(again.Logs), err, blob.read()-before)
			}

			fresh()
			before = blob.rangeBytes.Load()
			tid := logs[7001].TraceID
			tr, err := s.Trace(ctx, tid)
			if err != nil || len(tr.Warnings) > 0 {
				t.Fatal(err, tr.Warnings)
			}
			want := scan(Query{TraceID: tid})
			var gotTrace []string
			for i := range tr.Logs {
				gotTrace = append(gotTrace, lineKey(&tr.Logs[i]))
			}
			sort.Strings(gotTrace)
			if len(want) != 2 || !reflect.DeepEqual(gotTrace, want) {
				t.Fatalf("trace %s: %d lines, a full scan finds %d", tid, len(gotTrace), len(want))
			}
			if n := blob.rangeBytes.Load() - before; n == 0 || n*4 > st.ColdBytes {
				t.Fatalf("trace lookup read %d of %d cold bytes", n, st.ColdBytes)
			}

			// Random queries (phrases cut anywhere, field filters, windows):
			// exactly the full scan's lines, and never more ranged bytes
			// than the blocks hold.
			for n := 0; n < 40; n++ {
				q := randomQuery(r, all.Logs)
				got, ranged := ask(q)
				if want := scan(q); !reflect.DeepEqual(got, want) {
					t.Fatalf("query %+v: %d lines, a full scan finds %d", q, len(got), len(want))
				}
				if ranged > st.ColdBytes {
					t.Fatalf("query %+v read %d bytes by ranges, more than the %d the cold blocks hold", q, ranged, st.ColdBytes)
				}
				c, err := s.Count(ctx, q, "status")
				if err != nil || c.Total != len(scan(q)) {
					t.Fatalf("count of %+v: %+v %v, a full scan finds %d", q, c, err, len(scan(q)))
				}
			}
			s.cacheWG.Wait()
			if st := s.Stats(); st.BlobReads == 0 || st.BlobBytesRead != blob.read() {
				t.Fatalf("Stats counts %d reads, %d bytes; the seam saw %d bytes", st.BlobReads, st.BlobBytesRead, blob.read())
			}
		})
	}
}

func TestCoalesceMergesNearRanges(t *testing.T) {
	got := coalesce([]byteRange{{500, 10}, {0, 100}, {150, 50}, {100000, 5}, {90, 20}, {300, 0}}, 100)
	want := []byteRange{{0, 200}, {500, 10}, {100000, 5}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("coalesce = %v, want %v", got, want)
	}
}

// A read outside the fetched ranges is an I/O error, never a corrupt
// block (which would be set apart for good).
func TestSparseBlockMissIsNotCorruption(t *testing.T) {
	sb := &sparseBlock{key: "p/b.blk", parts: []sparsePart{{off: 10, b: []byte("0123456789")}}}
	buf := make([]byte, 4)
	if n, err := sb.ReadAt(buf, 12); err != nil || n != 4 || string(buf) != "2345" {
		t.Fatalf("read inside: %q %v", buf[:n], err)
	}
	m := &blockMeta{Name: "b.blk", Size: 100}
	for _, off := range []int64{0, 18, 40} {
		_, err := readBlockRange(sb, m, off, 4, "row group")
		if err == nil || errors.Is(err, ErrCorrupt) {
			t.Fatalf("read at %d: %v, want an error that is not ErrCorrupt", off, err)
		}
	}
}

// concurrentBlob records how many reads (whole or ranged) ran at once,
// each taking a while like an S3 round trip.
type concurrentBlob struct {
	Blob
	delay     time.Duration
	mu        sync.Mutex
	now, most int
}

func (b *concurrentBlob) enter() func() {
	b.mu.Lock()
	b.now++
	b.most = max(b.most, b.now)
	b.mu.Unlock()
	time.Sleep(b.delay)
	return func() { b.mu.Lock(); b.now--; b.mu.Unlock() }
}

func (b *concurrentBlob) Get(ctx context.Context, key string) ([]byte, error) {
	defer b.enter()()
	return b.Blob.Get(ctx, key)
}

func (b *concurrentBlob) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	defer b.enter()()
	return b.Blob.GetRange(ctx, key, off, n)
}

// A trace whose lines lie in several blocks is looked up with the blocks
// read at once, not one round trip (or disk read) after another.
func TestTraceLookupReadsItsBlocksInParallel(t *testing.T) {
	blob := &concurrentBlob{Blob: DirBlob{Root: t.TempDir()}, delay: 40 * time.Millisecond}
	now := t0.Add(30 * time.Minute)
	s := openTest(t, t.TempDir(), func(o *Options) {
		o.Blob, o.ColdAfter, o.BlockRows = blob, time.Hour, 500
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	logs := genLogs(3000)
	const id = "0123456789abcdef0123456789abcdef"
	for _, i := range []int{10, 1010, 2010, 2990} {
		logs[i].TraceID = id
	}
	if err := s.AppendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(5 * time.Hour)
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Trace(ctx, id)
	if err != nil || len(tr.Logs) != 4 || len(tr.Warnings) > 0 {
		t.Fatalf("trace: %d lines %v %v, want 4", len(tr.Logs), err, tr.Warnings)
	}
	for i := 1; i < len(tr.Logs); i++ {
		if tr.Logs[i].Time.Before(tr.Logs[i-1].Time) {
			t.Fatalf("lines out of time order: %v", tr.Logs)
		}
	}
	s.cacheWG.Wait() // the background cache fills
	blob.mu.Lock()
	most := blob.most
	blob.mu.Unlock()
	if most < 3 {
		t.Fatalf("at most %d blob reads at once for a trace in 4 blocks: read one after another", most)
	}
}
