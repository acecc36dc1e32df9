package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Maintain compacts hot partitions, applies retention and moves old
// partitions to the cold tier. It runs every Options.MaintainEvery.
func (s *Embedded) Maintain(ctx context.Context) error {
	return errors.Join(s.Compact(ctx), s.MoveCold(ctx), s.expireCold(ctx))
}

// Compact merges the small blocks of each hot partition into blocks of up
// to BlockRows rows and drops records past their service's retention. The
// new block names the blocks it replaces, so a crash before they are
// deleted cannot count their records twice.
func (s *Embedded) Compact(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	now := s.o.Now()
	groups := map[string][]*blockMeta{}
	s.mu.RLock()
	for k, m := range s.hot {
		if _, bad := s.corrupt[k]; bad {
			continue
		}
		groups[m.Partition+"/"+m.Kind] = append(groups[m.Partition+"/"+m.Kind], m)
	}
	s.mu.RUnlock()
	var errs []error
	for _, g := range sortedKeys(groups) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		blocks := groups[g]
		sort.Slice(blocks, func(i, j int) bool { return blocks[i].Name < blocks[j].Name })
		var small []*blockMeta
		for _, b := range blocks {
			expiring := false
			for _, svc := range b.Services {
				if s.expired(svc, time.Unix(0, b.MinTime), now) {
					expiring = true
				}
			}
			if b.Count < s.o.BlockRows/2 || expiring {
				small = append(small, b)
			}
		}
		if len(small) < 2 && !(len(small) == 1 && s.anyExpired(small[0], now)) {
			continue
		}
		// Merge in batches of at most two full blocks' rows (or two
		// blocks), so memory stays bounded however many small blocks
		// piled up.
		for len(small) > 0 {
			n, rows := 0, 0
			for n < len(small) && (n < 2 || rows+small[n].Count <= 2*s.o.BlockRows) {
				rows += small[n].Count
				n++
			}
			if n == 1 && !s.anyExpired(small[0], now) {
				break
			}
			if err := s.merge(ctx, small[:n], now); err != nil {
				errs = append(errs, err)
				break
			}
			small = small[n:]
		}
	}
	return errors.Join(errs...)
}

func (s *Embedded) anyExpired(b *blockMeta, now time.Time) bool {
	for _, svc := range b.Services {
		if s.expired(svc, time.Unix(0, b.MinTime), now) {
			return true
		}
	}
	return false
}

func (s *Embedded) merge(ctx context.Context, in []*blockMeta, now time.Time) error {
	kind, part := in[0].Kind, in[0].Partition
	var logs []*Log
	var spans []*Span
	var names []string
	var walSeq uint64
	for _, b := range in {
		c := candidate{meta: b}
		if kind == "logs" {
			l, err := s.decodeLogs(ctx, c)
			if err != nil {
				return err
			}
			for i := range l {
				if !s.expired(l[i].Service, l[i].Time, now) {
					logs = append(logs, &l[i])
				}
			}
		} else {
			sp, err := s.decodeSpans(ctx, c)
			if err != nil {
				return err
			}
			for i := range sp {
				if !s.expired(sp[i].Service, sp[i].Start, now) {
					spans = append(spans, &sp[i])
				}
			}
		}
		names = append(names, b.Name)
		walSeq = max(walSeq, b.WALSeq)
	}
	sortLogs(logs)
	sortSpans(spans)
	var out []*blockMeta
	written := func(m *blockMeta, data []byte) error {
		if err := writeFileAtomic(filepath.Join(s.hotDir, part, m.Name), data); err != nil {
			return err
		}
		m.Size = int64(len(data))
		out = append(out, m)
		return nil
	}
	stamp := s.o.Now().UnixNano()
	for i := 0; len(logs) > 0 || len(spans) > 0; i++ {
		// Every output names all inputs: any one of them surviving a crash
		// is enough to retire the inputs on recovery.
		m := &blockMeta{Name: fmt.Sprintf("%016d-c%d-%03d-%s.blk", walSeq, stamp, i, kind), Partition: part, WALSeq: walSeq, Replaces: names}
		var data []byte
		var err error
		if kind == "logs" {
			n := min(len(logs), s.o.BlockRows)
			data, err = encodeLogBlock(logs[:n], m)
			logs = logs[n:]
		} else {
			n := min(len(spans), s.o.BlockRows)
			data, err = encodeSpanBlock(spans[:n], m)
			spans = spans[n:]
		}
		if err == nil {
			err = written(m, data)
		}
		if err != nil {
			for _, o := range out {
				os.Remove(filepath.Join(s.hotDir, part, o.Name))
			}
			return fmt.Errorf("compact %s: %w", part, err)
		}
	}
	s.mu.Lock()
	for _, b := range in {
		delete(s.hot, part+"/"+b.Name)
	}
	for _, o := range out {
		s.hot[part+"/"+o.Name] = o
	}
	s.mu.Unlock()
	s.filesMu.Lock()
	for _, b := range in {
		os.Remove(filepath.Join(s.hotDir, part, b.Name))
	}
	s.filesMu.Unlock()
	return nil
}

// MoveCold moves hot partitions older than ColdAfter to the blob store.
// The order makes every block readable from exactly one tier at every
// moment: upload the blocks, then the partition's manifest, then record
// the move locally (the commit point), and only then delete the hot files.
// Until the local record exists the hot copy is the one served; after it,
// the cold one.
func (s *Embedded) MoveCold(ctx context.Context) error {
	if s.o.ColdAfter < 0 {
		return nil
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	cutoff := s.o.Now().Add(-s.o.ColdAfter)
	byPart := map[string][]*blockMeta{}
	s.mu.RLock()
	for k, m := range s.hot {
		if _, bad := s.corrupt[k]; bad {
			continue
		}
		if end := s.partitionEnd(m.Partition); !end.IsZero() && !end.After(cutoff) {
			byPart[m.Partition] = append(byPart[m.Partition], m)
		}
	}
	s.mu.RUnlock()
	var errs []error
	for _, p := range sortedKeys(byPart) {
		if err := s.movePartition(ctx, p, byPart[p]); err != nil {
			errs = append(errs, fmt.Errorf("move partition %s to the cold tier: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Embedded) movePartition(ctx context.Context, p string, blocks []*blockMeta) error {
	dir := filepath.Join(s.hotDir, p)
	// The blocks' needle files, written before the move commits and
	// served from the commit on; removed if the move fails.
	needles := map[string]*needleIndex{}
	committed := false
	defer func() {
		if !committed {
			for _, x := range needles {
				os.Remove(x.path)
			}
		}
	}()
	for _, b := range blocks {
		data, err := os.ReadFile(filepath.Join(dir, b.Name))
		if err != nil {
			return err
		}
		if _, err := decodeCheck(data, b); err != nil {
			s.markCorrupt(p+"/"+b.Name, err)
			return err
		}
		if err := s.o.Blob.Put(ctx, p+"/"+b.Name, data); err != nil {
			return err
		}
		if x := s.buildNeedles(p+"/"+b.Name, data, b); x != nil {
			needles[p+"/"+b.Name] = x
		}
	}
	man := manifest{Partition: p}
	s.mu.RLock()
	for _, m := range s.cold {
		if m.Partition == p {
			man.Blocks = append(man.Blocks, m)
		}
	}
	s.mu.RUnlock()
	man.Blocks = append(man.Blocks, blocks...)
	mb, err := json.Marshal(man)
	if err != nil {
		return err
	}
	if err := s.o.Blob.Put(ctx, p+"/MANIFEST.json", mb); err != nil {
		return err
	}
	var ml movedList
	for _, b := range blocks {
		ml.Blocks = append(ml.Blocks, b.Name)
	}
	lb, _ := json.Marshal(ml)
	if err := writeFileAtomic(filepath.Join(dir, "MOVED"), lb); err != nil {
		return err
	}
	s.mu.Lock()
	for _, b := range blocks {
		delete(s.hot, p+"/"+b.Name)
		s.cold[p+"/"+b.Name] = b
		if x := needles[p+"/"+b.Name]; x != nil {
			s.needles[p+"/"+b.Name] = x
		}
	}
	s.mu.Unlock()
	committed = true
	s.filesMu.Lock()
	for _, b := range blocks {
		os.Remove(filepath.Join(dir, b.Name))
	}
	s.filesMu.Unlock()
	os.Remove(filepath.Join(dir, "MOVED"))
	os.Remove(dir) // only when empty
	return nil
}

// decodeCheck verifies every column checksum before a block leaves the
// hot tier, so the cold tier never receives a damaged copy.
func decodeCheck(data []byte, m *blockMeta) (int, error) {
	if err := checkBlock(bytes.NewReader(data), m); err != nil {
		return 0, err
	}
	return m.Count, nil
}

// expireCold deletes cold partitions older than every service's
// retention: the manifest goes first, so a half-deleted partition is
// simply absent.
func (s *Embedded) expireCold(ctx context.Context) error {
	keep := s.maxRetention()
	if keep <= 0 {
		return nil
	}
	cutoff := s.o.Now().Add(-keep)
	parts := map[string][]*blockMeta{}
	s.mu.RLock()
	for _, m := range s.cold {
		if !s.partitionEnd(m.Partition).After(cutoff) {
			parts[m.Partition] = append(parts[m.Partition], m)
		}
	}
	s.mu.RUnlock()
	var errs []error
	for _, p := range sortedKeys(parts) {
		if err := s.o.Blob.Delete(ctx, p+"/MANIFEST.json"); err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		for _, m := range parts[p] {
			delete(s.cold, p+"/"+m.Name)
		}
		s.mu.Unlock()
		s.filesMu.Lock()
		for _, m := range parts[p] {
			_ = s.o.Blob.Delete(ctx, p+"/"+m.Name)
			os.Remove(filepath.Join(s.cache, p, m.Name))
			s.dropNeedles(p + "/" + m.Name)
		}
		s.filesMu.Unlock()
	}
	return errors.Join(errs...)
}
