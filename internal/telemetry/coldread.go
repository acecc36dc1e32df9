package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Reading the cold tier by row group: the footers of cold blocks are in
// memory (the partitions' manifests), so before a query touches a block it
// knows which row groups its skip indexes leave open. When those are a
// small part of the block, only their bytes are fetched, with ranged GETs
// (adjacent groups coalesced into one request, the requests in parallel),
// instead of the whole block: a rare phrase or a trace id needs one group
// of a few kilobytes out of megabytes. A read that needs most of a block
// fetches it whole and keeps it in the local cache, as before; after a
// ranged read the whole block follows into the cache in the background
// (fillCache), so later queries of the block read the local disk.

const (
	// coalesceGap: groups closer than this are fetched in one request;
	// the bytes between them cost less than another round trip.
	coalesceGap = 16 << 10
	// rangedShare: a read needing more than this share of a block's bytes
	// fetches the whole block (and caches it).
	rangedShare = 0.5
	// rangeFetches bounds the ranged GETs of one block in flight.
	rangeFetches = 8
	// cacheFills bounds the whole blocks fetched for the cache in the
	// background at once, so a query touching a hundred blocks by ranges
	// does not start a hundred whole-block GETs.
	cacheFills = 4
)

// byteRange is [off, off+n) of a block.
type byteRange struct{ off, n int64 }

func (r byteRange) end() int64 { return r.off + r.n }

// groupRange is where a row group's columns lie (back to back).
func groupRange(g *groupMeta) byteRange {
	if len(g.Columns) == 0 {
		return byteRange{g.Off, 0}
	}
	lo, hi := g.Columns[0].Off, g.Columns[0].Off
	for _, c := range g.Columns {
		lo, hi = min(lo, c.Off), max(hi, c.Off+c.Len)
	}
	return byteRange{lo, hi - lo}
}

// coalesce sorts ranges and merges those that overlap or lie within gap
// bytes of each other.
func coalesce(rs []byteRange, gap int64) []byteRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].off < rs[j].off })
	var out []byteRange
	for _, r := range rs {
		if r.n <= 0 {
			continue
		}
		if n := len(out); n > 0 && r.off <= out[n-1].end()+gap {
			out[n-1].n = max(out[n-1].end(), r.end()) - out[n-1].off
			continue
		}
		out = append(out, r)
	}
	return out
}

// coldRanges are the ranges a read of c fetches; whole is true when it
// should fetch the whole block instead (no group selection, or the groups
// make up most of the block).
func coldRanges(c candidate) (rs []byteRange, whole bool) {
	if c.need == nil {
		return nil, true
	}
	m := c.meta
	for gi := range m.Groups {
		if g := &m.Groups[gi]; c.need(m, g) {
			rs = append(rs, groupRange(g))
		}
	}
	rs = coalesce(rs, coalesceGap)
	var fetched int64
	for _, r := range rs {
		fetched += r.n
	}
	if m.Size <= 0 || float64(fetched) > rangedShare*float64(m.Size) {
		return nil, true
	}
	return rs, false
}

// fetchCold reads a cold block that is not in the local cache from the
// blob store: only the ranges the read needs, or the whole block (then
// kept in the local cache).
func (s *Embedded) fetchCold(ctx context.Context, c candidate) (io.ReaderAt, error) {
	m := c.meta
	key := m.Partition + "/" + m.Name
	rs, whole := coldRanges(c)
	if whole {
		b, err := s.o.Blob.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		s.blobReads.Add(1)
		s.blobBytes.Add(int64(len(b)))
		s.keepCached(key, filepath.Join(s.cache, m.Partition, m.Name), b)
		return bytes.NewReader(b), nil
	}
	parts := make([][]byte, len(rs))
	errs := make([]error, len(rs))
	sem := make(chan struct{}, rangeFetches)
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			parts[i], errs[i] = s.o.Blob.GetRange(ctx, key, r.off, r.n)
		}()
	}
	wg.Wait()
	sb := &sparseBlock{key: key}
	for i, r := range rs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		s.blobReads.Add(1)
		s.blobBytes.Add(r.n)
		sb.parts = append(sb.parts, sparsePart{off: r.off, b: parts[i]})
	}
	if c.fills != nil {
		c.fills.add(m)
	} else {
		s.fillCache(m)
	}
	return sb, nil
}

// fillQueue holds the blocks a query read by ranges until it has its
// answer: their whole copies are then fetched for the cache (fillLater),
// so those large GETs do not share the link and the store's time with the
// query's own small ones while it waits for them.
type fillQueue struct {
	mu    sync.Mutex
	metas []*blockMeta
}

func (q *fillQueue) add(m *blockMeta) {
	q.mu.Lock()
	q.metas = append(q.metas, m)
	q.mu.Unlock()
}

// deferFills makes the cold reads of blocks queue their cache fills; the
// caller runs the returned function once it has its answer.
func (s *Embedded) deferFills(blocks []candidate) (fillLater func()) {
	q := &fillQueue{}
	for i := range blocks {
		blocks[i].fills = q
	}
	return func() {
		q.mu.Lock()
		metas := q.metas
		q.metas = nil
		q.mu.Unlock()
		for _, m := range metas {
			s.fillCache(m)
		}
	}
}

// fillCache fetches a whole cold block into the local cache in the
// background after a read took only some of its row groups: the query
// waited for the small ranged reads alone, and the next one touching the
// block reads it from the local disk, as every read did before ranged
// reads (a block's bytes cross the network once either way). The fetch
// ends when the store closes.
func (s *Embedded) fillCache(m *blockMeta) {
	key := m.Partition + "/" + m.Name
	s.cachingMu.Lock()
	if s.filling[key] || len(s.filling) >= cacheFills {
		s.cachingMu.Unlock()
		return // a later read of the block tries again
	}
	s.filling[key] = true
	s.cachingMu.Unlock()
	s.cacheWG.Add(1)
	go func() {
		defer s.cacheWG.Done()
		defer func() {
			s.cachingMu.Lock()
			delete(s.filling, key)
			s.cachingMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		b, err := s.o.Blob.Get(ctx, key)
		if err != nil || int64(len(b)) != m.Size {
			return
		}
		s.blobReads.Add(1)
		s.blobBytes.Add(int64(len(b)))
		s.keepCached(key, filepath.Join(s.cache, m.Partition, m.Name), b)
	}()
}

// sparseBlock holds the fetched ranges of a block, sorted by offset.
type sparseBlock struct {
	key   string
	parts []sparsePart
}

type sparsePart struct {
	off int64
	b   []byte
}

// view hands out bytes inside one fetched range without copying them.
func (s *sparseBlock) view(off, n int64) ([]byte, bool) {
	i := sort.Search(len(s.parts), func(i int) bool { return s.parts[i].off > off }) - 1
	if i < 0 || n < 0 {
		return nil, false
	}
	part := s.parts[i]
	rel := off - part.off
	if rel+n > int64(len(part.b)) {
		return nil, false
	}
	return part.b[rel : rel+n : rel+n], true
}

// ReadAt serves reads that lie inside one fetched range. Any other read
// is a bug in choosing the ranges (the decoder and coldRanges disagree on
// the groups); it fails with an I/O error, which is reported and never
// taken for a corrupt block.
func (s *sparseBlock) ReadAt(p []byte, off int64) (int, error) {
	i := sort.Search(len(s.parts), func(i int) bool { return s.parts[i].off > off }) - 1
	if i >= 0 {
		part := s.parts[i]
		if rel := off - part.off; rel+int64(len(p)) <= int64(len(part.b)) {
			return copy(p, part.b[rel:]), nil
		}
	}
	return 0, fmt.Errorf("block %s: bytes %d+%d were not fetched from the blob store", s.key, off, len(p))
}
