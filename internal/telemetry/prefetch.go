package telemetry

import (
	"context"
	"io"
	"os"
	"path/filepath"
)

// Reading ahead in the cold tier: a query that reads several blocks of the
// blob store fetches the next few while it decodes the current one, so it
// waits for about one round trip per prefetchAhead blocks instead of one
// per block (an S3 GET costs tens of milliseconds however small).

// prefetchAhead bounds the whole blocks fetched ahead (their bytes wait in
// memory); rangedAhead bounds how far ahead a query looks, since blocks
// fetched only by a few row groups (coldread.go) cost little to hold.
const prefetchAhead, rangedAhead = 4, 16

// fetched is a cold block being fetched ahead of its reader.
type fetched struct {
	done  chan struct{}
	whole bool
	src   io.ReaderAt
	err   error
}

// prefetch starts fetching the cold blocks among the next ones that are
// neither cached nor already being fetched: up to prefetchAhead fetched
// whole, within rangedAhead blocks. ctx ends the fetches when the query is
// done.
func (s *Embedded) prefetch(ctx context.Context, blocks []candidate, i int) {
	whole := 0
	for j := i; j < min(i+rangedAhead, len(blocks)) && whole < prefetchAhead; j++ {
		c := &blocks[j]
		if !c.cold {
			continue
		}
		if c.ahead != nil {
			if c.ahead.whole {
				whole++
			}
			continue
		}
		if st, err := os.Stat(filepath.Join(s.cache, c.meta.Partition, c.meta.Name)); err == nil && st.Size() == c.meta.Size {
			continue
		}
		_, w := coldRanges(*c)
		if w {
			whole++
		}
		f := &fetched{done: make(chan struct{}), whole: w}
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
