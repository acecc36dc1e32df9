package telemetry

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Reading ahead in the cold tier: a query that reads several blocks of the
// blob store fetches the next few while it decodes the current one, so it
// waits for about one round trip per prefetchAhead blocks instead of one
// per block (an S3 GET costs tens of milliseconds however small).

// prefetchAhead bounds the whole blocks fetched ahead (their bytes wait in
// memory), among the next wholeAhead blocks. Blocks fetched only by a few
// row groups (coldread.go) cost little to hold, so a query looks further
// ahead for them, rangedAhead blocks and rangedAheadBytes: a rare phrase
// whose groups lie in thirty blocks asks for all of them at once and waits
// for one round trip, not one per sixteen blocks.
const (
	prefetchAhead, wholeAhead = 4, 16
	rangedAhead               = 64
	rangedAheadBytes          = 8 << 20
)

// fetched is a cold block being fetched ahead of its reader.
type fetched struct {
	done  chan struct{}
	whole bool
	bytes int64 // of the ranges, when not whole
	src   io.ReaderAt
	err   error
}

// prefetch starts fetching the cold blocks among the next ones that are
// neither cached nor already being fetched: up to prefetchAhead fetched
// whole within wholeAhead blocks, and blocks fetched by ranges within
// rangedAhead blocks and rangedAheadBytes. ctx ends the fetches when the
// query is done.
func (s *Embedded) prefetch(ctx context.Context, blocks []candidate, i int) {
	s.readAheadLocal(blocks, i)
	whole := 0
	var ranged int64
	for j := i; j < min(i+rangedAhead, len(blocks)) && whole < prefetchAhead && ranged < rangedAheadBytes; j++ {
		c := &blocks[j]
		if !c.cold || c.needles != nil {
			continue // local: read ahead by readAheadLocal, or from its needle file
		}
		if c.ahead != nil {
			if c.ahead.whole {
				whole++
			}
			ranged += c.ahead.bytes
			continue
		}
		if c.hinted {
			continue // in the local cache, read ahead there
		}
		if st, err := os.Stat(filepath.Join(s.cache, c.meta.Partition, c.meta.Name)); err == nil && st.Size() == c.meta.Size {
			continue
		}
		if c.plan == nil {
			rs, w := coldRanges(*c)
			c.plan = &coldPlan{rs, w}
		}
		rs, w := c.plan.rs, c.plan.whole
		if w && j >= i+wholeAhead {
			continue // too far ahead to hold a whole block for
		}
		f := &fetched{done: make(chan struct{}), whole: w}
		if w {
			whole++
		}
		for _, r := range rs {
			f.bytes += r.n
		}
		ranged += f.bytes
		c.ahead = f
		cc := *c
		s.cacheWG.Add(1)
		go func() {
			defer s.cacheWG.Done()
			defer close(f.done)
			f.src, f.err = s.fetchCold(ctx, cc)
		}()
	}
}

// takeAhead returns the prefetched block c, or nil when there is none
// (not prefetched, or the fetch failed: the reader fetches it itself).
func takeAhead(ctx context.Context, c candidate) io.ReaderAt {
	if c.ahead == nil {
		return nil
	}
	select {
	case <-c.ahead.done:
	case <-ctx.Done():
		return nil
	}
	if c.ahead.err != nil {
		return nil
	}
	return c.ahead.src
}

// hotAheadBytes bounds the bytes of local blocks a query asks the kernel
// to read ahead of its decoder (readAheadLocal).
const hotAheadBytes = 8 << 20

// readAheadLocal asks the kernel to start reading the row groups the
// query will decode in the local blocks among the next rangedAhead ones
// (within hotAheadBytes): the hot blocks, and the cold ones whose copy is
// in the local cache. With a cold page cache (after a restart, or data
// older than the cache holds) those reads are then all in flight at once
// instead of one disk read after another as the decoder comes to them.
// Goroutines reading in parallel do not do this with GOMAXPROCS=1, where
// a read blocked in the kernel holds the only P until the runtime's
// monitor takes it back (up to milliseconds on an idle server). A page
// already cached costs the hint nothing; a hinted block is not hinted
// again. A cold block not in the cache is prefetch's, from the blob store.
func (s *Embedded) readAheadLocal(blocks []candidate, i int) {
	var bytes int64
	for j := i; j < min(i+rangedAhead, len(blocks)) && bytes < hotAheadBytes; j++ {
		c := &blocks[j]
		if c.hinted {
			bytes += c.hintedBytes
			continue
		}
		if c.ahead != nil || c.needles != nil {
			continue // being fetched from the blob store, or read from its needle file
		}
		f, err := s.openLocal(c.meta, c.cold)
		if err != nil {
			continue // not local: prefetch fetches it, or the read reports it
		}
		rs := hotRanges(*c)
		for _, r := range rs {
			c.hintedBytes += r.n
		}
		bytes += c.hintedBytes
		c.hinted = true
		willNeed(f, rs)
		f.Close()
	}
}

// openLocal opens a block's local file: a hot block's, or the cached copy
// of a cold one, trusted only at its full size.
func (s *Embedded) openLocal(m *blockMeta, cold bool) (*os.File, error) {
	if !cold {
		return os.Open(filepath.Join(s.hotDir, m.Partition, m.Name))
	}
	f, err := os.Open(filepath.Join(s.cache, m.Partition, m.Name))
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || st.Size() != m.Size {
		f.Close()
		return nil, fmt.Errorf("cached copy of %s/%s incomplete", m.Partition, m.Name)
	}
	return f, nil
}

// hotRanges are the ranges of a hot block a read of c decodes: the row
// groups c.need keeps, or the whole block.
func hotRanges(c candidate) []byteRange {
	if c.need == nil {
		return []byteRange{{0, c.meta.Size}}
	}
	var rs []byteRange
	for gi := range c.meta.Groups {
		if g := &c.meta.Groups[gi]; c.need(c.meta, g) {
			rs = append(rs, groupRange(g))
		}
	}
	return coalesce(rs, coalesceGap)
}
