package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Recovery at Open: the flushed marker, hot and cold blocks found on disk, and
// the write-ahead log replayed into memory.

func (s *Embedded) markerPath() string { return filepath.Join(s.walDir, "flushed") }

func (s *Embedded) recover(ctx context.Context) error {
	if b, err := os.ReadFile(s.markerPath()); err == nil {
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return fmt.Errorf("telemetry: %s holds %q, not a segment number: %w", s.markerPath(), b, err)
		}
		s.flushed = n
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("telemetry: %w", err)
	}
	if err := s.loadHot(); err != nil {
		return err
	}
	if err := s.loadCold(ctx); err != nil {
		return err
	}
	s.loadNeedles()
	seqs, err := listSegments(s.walDir)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	last := s.flushed
	for _, seq := range seqs {
		last = max(last, seq)
		p := filepath.Join(s.walDir, segmentName(seq))
		if seq <= s.flushed {
			os.Remove(p)
			continue
		}
		torn, err := readSegment(p, func(typ byte, payload []byte) error {
			switch typ {
			case entryLogs:
				// Decoded once to check it and size it; kept encoded
				// (a copy: payload is a view of the whole segment).
				logs, err := decodeLogBatch(payload)
				if err != nil {
					return err
				}
				approx := 0
				for i := range logs {
					approx += logs[i].approxSize()
				}
				s.addToMem(typ, bytes.Clone(payload), len(logs), approx)
			case entrySpans:
				spans, err := decodeSpanBatch(payload)
				if err != nil {
					return err
				}
				approx := 0
				for i := range spans {
					approx += spans[i].approxSize()
				}
				s.addToMem(typ, bytes.Clone(payload), len(spans), approx)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("telemetry: replay %s: %w", p, err)
		}
		if torn >= 0 {
			// Only an unacknowledged write can be cut short: group commit
			// acknowledges after the fsync that covers the whole entry.
			s.log.Warn("write-ahead log segment ends in a partial entry (an unacknowledged write cut by a crash); ignored",
				"segment", p, "offset", torn)
		}
	}
	s.w = &wal{dir: s.walDir, create: s.o.CreateSegment, seq: last}
	if err := s.w.open(last + 1); err != nil {
		s.w.broken = true // the first write retries
		s.log.Error("cannot open a write-ahead log segment; writes will be refused until it can", "err", err)
	}
	return nil
}

// addToMem adds a committed batch (its WAL payload) to the active memory
// table; it returns the table's size. Call with s.mu held.
func (s *Embedded) addToMem(kind byte, payload []byte, count, approx int) int {
	switch kind {
	case entryLogs:
		s.active.logs = append(s.active.logs, payload)
	case entrySpans:
		s.active.spans = append(s.active.spans, payload)
	}
	s.active.lines += count
	s.active.bytes += approx
	s.memSize += approx
	return s.active.bytes
}

func readMetaFile(path string) (*blockMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(blockMagic))+16+int64(len(blockEnd)) {
		return nil, fmt.Errorf("%w: truncated (%d bytes)", ErrCorrupt, size)
	}
	tail := make([]byte, 8+len(blockEnd))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return nil, err
	}
	n := int64(uint32(tail[0]) | uint32(tail[1])<<8 | uint32(tail[2])<<16 | uint32(tail[3])<<24)
	if n > size-int64(len(tail)+len(blockMagic)) {
		return nil, fmt.Errorf("%w: footer length out of range", ErrCorrupt)
	}
	// readBlockMeta wants magic + footer + tail; give it a stitched view.
	head := make([]byte, len(blockMagic))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, err
	}
	foot := make([]byte, n)
	if _, err := f.ReadAt(foot, size-int64(len(tail))-n); err != nil {
		return nil, err
	}
	view := append(append(head, foot...), tail...)
	m, err := readBlockMetaLoose(view, size-int64(len(tail))-n)
	if err != nil {
		return nil, err
	}
	m.Size = size
	return m, nil
}

// readBlockMetaLoose checks a stitched footer view; column bounds are
// checked against the real footer offset.
func readBlockMetaLoose(view []byte, footOff int64) (*blockMeta, error) {
	if blockFormat(view) == 0 || string(view[len(view)-len(blockEnd):]) != string(blockEnd) {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	t := len(view) - len(blockEnd) - 8
	foot := view[len(blockMagic):t]
	sum := uint32(view[t+4]) | uint32(view[t+5])<<8 | uint32(view[t+6])<<16 | uint32(view[t+7])<<24
	if crcOf(foot) != sum {
		return nil, fmt.Errorf("%w: footer checksum mismatch", ErrCorrupt)
	}
	var m blockMeta
	if err := unmarshalFooter(foot, &m); err != nil {
		return nil, err
	}
	if err := checkFormat(view, &m); err != nil {
		return nil, err
	}
	if err := checkGroups(&m, footOff); err != nil {
		return nil, err
	}
	return &m, nil
}

type movedList struct {
	Blocks []string `json:"blocks"`
}

func (s *Embedded) loadHot() error {
	parts, err := os.ReadDir(s.hotDir)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	var replaced []string
	for _, p := range parts {
		if !p.IsDir() {
			continue
		}
		dir := filepath.Join(s.hotDir, p.Name())
		moved := map[string]bool{}
		if b, err := os.ReadFile(filepath.Join(dir, "MOVED")); err == nil {
			var ml movedList
			if err := json.Unmarshal(b, &ml); err != nil {
				return fmt.Errorf("telemetry: %s/MOVED: %w", dir, err)
			}
			for _, n := range ml.Blocks {
				moved[n] = true
				os.Remove(filepath.Join(dir, n)) // finish an interrupted move: it is in the cold tier
			}
			os.Remove(filepath.Join(dir, "MOVED"))
		}
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("telemetry: %w", err)
		}
		for _, f := range files {
			name := f.Name()
			path := filepath.Join(dir, name)
			if strings.HasSuffix(name, ".tmp") {
				os.Remove(path)
				continue
			}
			if !strings.HasSuffix(name, ".blk") || moved[name] {
				continue
			}
			key := p.Name() + "/" + name
			m, err := readMetaFile(path)
			if err != nil {
				s.corrupt[key] = err.Error()
				s.log.Error("telemetry block is corrupt; it is not served", "block", path, "err", err)
				continue
			}
			if m.WALSeq > s.flushed && len(m.Replaces) == 0 {
				// Written by a flush that did not reach its commit point:
				// the WAL still holds these records and replays them.
				os.Remove(path)
				continue
			}
			m.Name, m.Partition = name, p.Name()
			s.hot[key] = m
			for _, r := range m.Replaces {
				replaced = append(replaced, p.Name()+"/"+r)
			}
		}
	}
	// A compaction whose output is durable but whose inputs survived a
	// crash: the inputs go, so nothing is counted twice.
	for _, key := range replaced {
		if _, ok := s.hot[key]; ok {
			delete(s.hot, key)
			os.Remove(filepath.Join(s.hotDir, filepath.FromSlash(key)))
		}
	}
	return nil
}

type manifest struct {
	Partition string       `json:"partition"`
	Blocks    []*blockMeta `json:"blocks"`
}

func (s *Embedded) loadCold(ctx context.Context) error {
	keys, err := s.o.Blob.List(ctx, "")
	if err != nil {
		return fmt.Errorf("telemetry: cold tier: %w", err)
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, "/MANIFEST.json") {
			continue
		}
		b, err := s.o.Blob.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("telemetry: cold tier %s: %w", k, err)
		}
		var m manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("telemetry: cold tier %s: %w", k, err)
		}
		for _, bm := range m.Blocks {
			if err := bm.expand(); err != nil {
				return fmt.Errorf("telemetry: cold tier %s: %w", k, err)
			}
			key := m.Partition + "/" + bm.Name
			// Still in the hot tier without a MOVED record: the move did not
			// commit, the hot copy is the one that counts.
			if _, ok := s.hot[key]; ok {
				continue
			}
			bm.Partition = m.Partition
			s.cold[key] = bm
		}
	}
	return nil
}
