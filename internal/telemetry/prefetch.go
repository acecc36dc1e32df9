package telemetry

import (
	"context"
	"os"
	"path/filepath"
)

// Reading ahead in the cold tier: a query that reads several blocks of the
// blob store fetches the next few while it decodes the current one, so it
// waits for about one round trip per prefetchAhead blocks instead of one
// per block (an S3 GET costs tens of milliseconds however small).

const prefetchAhead = 4

// fetched is a cold block being fetched ahead of its reader.
type fetched struct {
	done chan struct{}
	b    []byte
	err  error
}

// prefetch starts fetching the cold blocks among blocks[i:i+prefetchAhead]
// that are neither cached nor already being fetched. ctx ends the fetches
// when the query is done.
func (s *Embedded) prefetch(ctx context.Context, blocks []candidate, i int) {
	for j := i; j < min(i+prefetchAhead, len(blocks)); j++ {
		c := &blocks[j]
		if !c.cold || c.ahead != nil {
			continue
		}
		if st, err := os.Stat(filepath.Join(s.cache, c.meta.Partition, c.meta.Name)); err == nil && st.Size() == c.meta.Size {
			continue
		}
		f := &fetched{done: make(chan struct{})}
		c.ahead = f
		m := c.meta
		s.cacheWG.Add(1)
		go func() {
			defer s.cacheWG.Done()
			defer close(f.done)
			key := m.Partition + "/" + m.Name
			f.b, f.err = s.o.Blob.Get(ctx, key)
			if f.err == nil {
				s.keepCached(key, filepath.Join(s.cache, m.Partition, m.Name), f.b)
			}
		}()
	}
}

// takeAhead returns the prefetched bytes of c, or nil when there are none
// (not prefetched, or the fetch failed: the reader fetches it itself).
func takeAhead(ctx context.Context, c candidate) []byte {
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
	return c.ahead.b
}
