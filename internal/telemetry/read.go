package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Reading blocks from either tier: hot files, the local cache of the cold
// tier, or the blob store, with checksums checked and corrupt blocks set apart.

// openBlock returns a reader of a block from the hot tier, or from the
// local cache of the cold tier, fetching it (or only the ranges the read
// needs, see coldread.go) from the blob store on a miss. Close it after use.
func (s *Embedded) openBlock(ctx context.Context, c candidate) (blockSource, error) {
	m := c.meta
	// A cached copy's column checksums are checked on every read like any
	// block's, and a failing copy is dropped and fetched again (see
	// withBlock).
	f, err := s.openLocal(m, c.cold)
	if err == nil {
		return f, nil
	}
	if !c.cold {
		return nil, err
	}
	src, err := s.fetchCold(ctx, c)
	if err != nil {
		return nil, err
	}
	return nopCloser{src}, nil
}

// keepCached writes a fetched cold block to the local cache in the
// background: the lookup that fetched it answers from memory without
// waiting for the copy. One write per block at a time; a block that left
// the cold tier meanwhile is not cached.
func (s *Embedded) keepCached(key, path string, b []byte) {
	s.cachingMu.Lock()
	if s.caching[key] {
		s.cachingMu.Unlock()
		return
	}
	s.caching[key] = true
	s.cachingMu.Unlock()
	s.cacheWG.Add(1)
	go func() {
		defer s.cacheWG.Done()
		defer func() {
			s.cachingMu.Lock()
			delete(s.caching, key)
			s.cachingMu.Unlock()
		}()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return
		}
		// No fsync: a cache lost in a crash is fetched again.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			os.Remove(tmp)
			return
		}
		s.mu.RLock()
		_, stillCold := s.cold[key]
		s.mu.RUnlock()
		if !stillCold {
			os.Remove(tmp)
			return
		}
		os.Rename(tmp, path)
		s.rebuildNeedles(key, b)
	}()
}

type blockSource interface {
	io.ReaderAt
	io.Closer
}

type nopCloser struct{ io.ReaderAt }

func (nopCloser) Close() error { return nil }

// dropCached removes a cold block's local copy; it reports whether there
// was one (so a second read goes to the blob store).
func (s *Embedded) dropCached(m *blockMeta) bool {
	return os.Remove(filepath.Join(s.cache, m.Partition, m.Name)) == nil
}

func (s *Embedded) markCorrupt(key string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.corrupt[key]; !ok {
		s.log.Error("telemetry block is corrupt; it is not served", "block", key, "err", err)
	}
	s.corrupt[key] = err.Error()
}

type candidate struct {
	meta  *blockMeta
	cold  bool
	ahead *fetched // a cold block fetched ahead of the query (prefetch)
	// need tells the row groups the read will decode; nil means all. A
	// cold block is fetched by these groups' ranges when they are few.
	need func(*blockMeta, *groupMeta) bool
	// fills, when set, queues the cache fill after a ranged read until
	// the query is answered (see deferFills).
	fills *fillQueue
	plan  *coldPlan // what prefetch found coldRanges to be
	// needles: the block's needle file holds every line the query can
	// keep from it (useNeedles), so it is read instead of the block.
	needles *needleIndex
	// hinted: the kernel was asked to read hintedBytes of this hot
	// block's groups ahead (readAheadLocal).
	hinted      bool
	hintedBytes int64
}

type coldPlan struct {
	rs    []byteRange
	whole bool
}

// blocksFor snapshots the blocks a filter may need, newest first.
func (s *Embedded) blocksFor(keep func(*blockMeta) bool) []candidate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []candidate
	for k, m := range s.hot {
		if _, bad := s.corrupt[k]; !bad && keep(m) {
			out = append(out, candidate{meta: m})
		}
	}
	for k, m := range s.cold {
		if _, bad := s.corrupt[k]; !bad && keep(m) {
			out = append(out, candidate{meta: m, cold: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.MaxTime > out[j].meta.MaxTime })
	return out
}

func (s *Embedded) decodeLogs(ctx context.Context, c candidate) ([]Log, error) {
	return s.decodeLogsOf(ctx, c, "")
}

// decodeLogsOf reads a block's lines, only those of traceID when set.
func (s *Embedded) decodeLogsOf(ctx context.Context, c candidate, traceID string) ([]Log, error) {
	return s.decodeLogsWhere(ctx, c, traceID, nil)
}

// decodeLogsWhere reads the block's lines f keeps (all when f is nil).
func (s *Embedded) decodeLogsWhere(ctx context.Context, c candidate, traceID string, f *rowFilter) ([]Log, error) {
	var out []Log
	err := s.withBlock(ctx, c, func(src io.ReaderAt) (err error) {
		out, err = decodeLogRowsWhere(src, c.meta, traceID, f)
		return err
	})
	return out, err
}

func (s *Embedded) decodeSpans(ctx context.Context, c candidate) ([]Span, error) {
	return s.decodeSpansOf(ctx, c, "")
}

func (s *Embedded) decodeSpansOf(ctx context.Context, c candidate, traceID string) ([]Span, error) {
	var out []Span
	err := s.withBlock(ctx, c, func(src io.ReaderAt) (err error) {
		out, err = decodeSpanBlock(src, c.meta, traceID)
		return err
	})
	return out, err
}

// withBlock runs decode on a block; a cold block whose cached copy fails
// its checksums is fetched again once before it is called corrupt.
func (s *Embedded) withBlock(ctx context.Context, c candidate, decode func(io.ReaderAt) error) error {
	s.blocksRead.Add(1)
	key := c.meta.Partition + "/" + c.meta.Name
	ahead := takeAhead(ctx, c)
	try := func() (bool, error) {
		if ahead != nil {
			src := ahead
			ahead = nil // a second try fetches the block again
			return true, decode(src)
		}
		src, err := s.openBlock(ctx, c)
		if err != nil {
			return false, fmt.Errorf("block %s: %w", key, err)
		}
		defer src.Close()
		return true, decode(src)
	}
	opened, err := try()
	if !opened {
		return err
	}
	if err != nil && c.cold && s.dropCached(c.meta) {
		_, err = try()
	}
	if err != nil && errors.Is(err, ErrCorrupt) {
		s.markCorrupt(key, err)
	}
	return err
}
