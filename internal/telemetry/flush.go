package telemetry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Flushing: the memory table becomes hot blocks, one per partition and
// service, and the write-ahead log segments it covered are dropped.

func (s *Embedded) flusher() {
	defer s.wg.Done()
	var tick <-chan time.Time
	t := time.NewTicker(s.o.FlushInterval)
	defer t.Stop()
	tick = t.C
	var maint <-chan time.Time
	if s.o.MaintainEvery > 0 {
		mt := time.NewTicker(s.o.MaintainEvery)
		defer mt.Stop()
		maint = mt.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-s.flushCh:
		case <-tick:
		case <-maint:
			if err := s.Maintain(context.Background()); err != nil {
				s.log.Error("telemetry maintenance failed; will retry", "err", err)
			}
			continue
		}
		if err := s.Flush(context.Background()); err != nil {
			s.log.Error("telemetry flush failed; records stay in the write-ahead log and memory", "err", err)
		}
	}
}

// Flush writes everything in memory to hot blocks.
func (s *Embedded) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.RLock()
	empty := s.active.lines == 0
	s.mu.RUnlock()
	if !empty {
		c := &commit{rotate: true, done: make(chan error, 1)}
		select {
		case s.commits <- c:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return nil
		}
		select {
		case err := <-c.done:
			if err != nil {
				s.log.Warn("write-ahead log rotation failed; flushing anyway", "err", err)
			}
		case <-s.stop:
			return nil
		}
	}
	for {
		s.mu.RLock()
		var m *memtable
		if len(s.frozen) > 0 {
			m = s.frozen[0]
		}
		s.mu.RUnlock()
		if m == nil {
			return nil
		}
		if err := s.flushOne(m); err != nil {
			return err
		}
	}
}

// partitionLayout names a partition by its start.
const partitionLayout = "20060102T150405Z"

// partitioner names the partitions of a flush's records, formatting each
// partition's name once instead of once per record.
type partitioner struct {
	lo, hi int64 // the partition called name covers [lo, hi), in Unix ns
	name   string
}

func (p *partitioner) of(t time.Time, length time.Duration) string {
	ns := t.UnixNano()
	if p.name == "" || ns < p.lo || ns >= p.hi {
		start := t.UTC().Truncate(length)
		p.lo, p.hi, p.name = start.UnixNano(), start.Add(length).UnixNano(), start.Format(partitionLayout)
	}
	return p.name
}

func (s *Embedded) partitionEnd(p string) time.Time {
	t, err := time.Parse(partitionLayout, p)
	if err != nil {
		return time.Time{}
	}
	return t.Add(s.o.Partition)
}

func (s *Embedded) flushOne(m *memtable) error {
	var parts partitioner
	logsBy := m.logRefs(func(t time.Time) string { return parts.of(t, s.o.Partition) })
	spansBy := map[string][]*Span{}
	spans := m.allSpans()
	for i := range spans {
		sp := &spans[i]
		p := parts.of(sp.Start, s.o.Partition)
		spansBy[p] = append(spansBy[p], sp)
	}
	var written []*blockMeta
	fail := func(err error) error {
		for _, b := range written {
			os.Remove(filepath.Join(s.hotDir, b.Partition, b.Name))
		}
		return fmt.Errorf("%w: flush: %w", ErrUnavailable, err)
	}
	i := 0
	write := func(p string, kind string, encode func(*blockMeta) ([]byte, error)) error {
		meta := &blockMeta{Name: fmt.Sprintf("%016d-%05d-%s.blk", m.walSeq, i, kind), Partition: p, WALSeq: m.walSeq}
		i++
		data, err := encode(meta)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(s.hotDir, p), 0o700); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(s.hotDir, p, meta.Name), data); err != nil {
			return err
		}
		meta.Size = int64(len(data))
		written = append(written, meta)
		return nil
	}
	var buf []Log
	var ptrs []*Log
	for _, p := range sortedKeys(logsBy) {
		refs := make([]*memRef, len(logsBy[p]))
		for i := range refs {
			refs[i] = &logsBy[p][i]
		}
		sortByServiceTime(refs, func(r *memRef) (string, int64) { return r.svc, r.t })
		for len(refs) > 0 {
			n := min(len(refs), s.o.BlockRows)
			block := refs[:n]
			refs = refs[n:]
			// One row group's lines decoded at a time (encodeLogGroups).
			rows := func(lo, hi int) []*Log {
				ptrs, buf = m.decodeRefs(block[lo:hi], buf, ptrs)
				return ptrs
			}
			if err := write(p, "logs", func(mm *blockMeta) ([]byte, error) { return encodeLogGroups(n, rows, mm) }); err != nil {
				return fail(err)
			}
		}
	}
	for _, p := range sortedKeys(spansBy) {
		spans := spansBy[p]
		sortSpans(spans)
		for len(spans) > 0 {
			n := min(len(spans), s.o.BlockRows)
			chunk := spans[:n]
			spans = spans[n:]
			if err := write(p, "spans", func(mm *blockMeta) ([]byte, error) { return encodeSpanBlock(chunk, mm) }); err != nil {
				return fail(err)
			}
		}
	}
	// The commit point: from here the blocks count and the WAL segments
	// up to m.walSeq are no longer replayed.
	if err := writeFileAtomic(s.markerPath(), []byte(strconv.FormatUint(m.walSeq, 10))); err != nil {
		return fail(err)
	}
	s.mu.Lock()
	s.flushed = m.walSeq
	for _, b := range written {
		s.hot[b.Partition+"/"+b.Name] = b
	}
	s.frozen = s.frozen[1:]
	s.memSize -= m.bytes
	s.mu.Unlock()
	seqs, _ := listSegments(s.walDir)
	for _, seq := range seqs {
		if seq <= m.walSeq {
			os.Remove(filepath.Join(s.walDir, segmentName(seq)))
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Embedded) retentionOf(service string) time.Duration {
	if d, ok := s.o.Retention[service]; ok {
		return d
	}
	return s.o.DefaultRetention
}

// expired reports whether a record of service at t is past retention.
func (s *Embedded) expired(service string, t time.Time, now time.Time) bool {
	d := s.retentionOf(service)
	return d > 0 && t.Before(now.Add(-d))
}

func (s *Embedded) maxRetention() time.Duration {
	if s.o.DefaultRetention <= 0 {
		return 0
	}
	m := s.o.DefaultRetention
	for _, d := range s.o.Retention {
		if d <= 0 {
			return 0
		}
		m = max(m, d)
	}
	return m
}
