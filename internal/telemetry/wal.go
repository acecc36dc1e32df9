package telemetry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The write-ahead log makes a batch durable before it is acknowledged. It is
// a sequence of segment files; an entry is [length u32][crc32c u32][type][payload].
// A flush rotates to a new segment, writes blocks of everything before it,
// records the last flushed segment, and only then deletes those segments, so
// a crash at any point replays each acknowledged record exactly once.

const (
	entryLogs   byte = 1
	entrySpans  byte = 2
	walHeader        = 8
	walMaxEntry      = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SegmentFile is an open WAL segment. Tests inject one that fails like a
// full disk does.
type SegmentFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// CreateFunc opens a new segment file for appending.
type CreateFunc func(path string) (SegmentFile, error)

func createOSFile(path string) (SegmentFile, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
}

type wal struct {
	dir    string
	create CreateFunc
	seq    uint64
	f      SegmentFile
	off    int64
	broken bool // a failed write could not be rolled back: start a new segment
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016d.wal", seq) }

func parseSegmentName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".wal")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		if n, ok := parseSegmentName(e.Name()); ok {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// open starts segment seq.
func (w *wal) open(seq uint64) error {
	f, err := w.create(filepath.Join(w.dir, segmentName(seq)))
	if err != nil {
		return fmt.Errorf("%w: create write-ahead log segment: %w", ErrUnavailable, err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	w.f, w.seq, w.off, w.broken = f, seq, 0, false
	return nil
}

// frameBuffer starts an entry with room for its header: the payload is
// appended to it and sealFrame fills the header in, so a batch is encoded
// straight into its frame.
func frameBuffer(typ byte, capacity int) []byte {
	b := make([]byte, walHeader+1, walHeader+1+capacity)
	b[walHeader] = typ
	return b
}

func sealFrame(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(b)-walHeader))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(b[walHeader:], castagnoli))
	return b
}

// write appends framed entries and fsyncs once for all of them (the group
// commit). On failure the segment is cut back to its previous length, so a
// refused batch leaves no partial entry behind.
func (w *wal) write(frames [][]byte) error {
	if w.broken || w.f == nil {
		if w.f != nil {
			w.f.Close()
		}
		if err := w.open(w.seq + 1); err != nil {
			return err
		}
	}
	start := w.off
	var err error
	for _, fr := range frames {
		var n int
		n, err = w.f.Write(fr)
		w.off += int64(n)
		if err != nil {
			break
		}
	}
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		if terr := w.f.Truncate(start); terr != nil {
			w.broken = true
		} else {
			w.off = start
		}
		return fmt.Errorf("%w: write-ahead log: %w", ErrUnavailable, err)
	}
	return nil
}

// rotate closes the current segment and starts the next; it returns the
// number of the closed one.
func (w *wal) rotate() (uint64, error) {
	old := w.seq
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.seq = old // open(old+1) below on success
	if err := w.open(old + 1); err != nil {
		w.broken = true
		w.seq = old + 1 // never reuse a number that may exist
		return old, err
	}
	return old, nil
}

func (w *wal) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// readSegment calls fn for every intact entry. A torn or corrupt tail (a
// write cut by a crash, never acknowledged) ends the segment; its offset is
// returned so recovery can report it.
func readSegment(path string, fn func(typ byte, payload []byte) error) (tornAt int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	off := 0
	for off < len(data) {
		if len(data)-off < walHeader+1 {
			return int64(off), nil
		}
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n < 1 || n > walMaxEntry || off+walHeader+n > len(data) {
			return int64(off), nil
		}
		body := data[off+walHeader : off+walHeader+n]
		if crc32.Checksum(body, castagnoli) != sum {
			return int64(off), nil
		}
		if err := fn(body[0], body[1:]); err != nil {
			return int64(off), err
		}
		off += walHeader + n
	}
	return -1, nil
}

func decodeLogBatch(p []byte) ([]Log, error) {
	d := &dec{b: p}
	n := d.uvarint()
	if n > uint64(len(p)) {
		return nil, errShort
	}
	out := make([]Log, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, readLogRecord(d))
	}
	return out, d.err
}

func decodeSpanBatch(p []byte) ([]Span, error) {
	d := &dec{b: p}
	n := d.uvarint()
	if n > uint64(len(p)) {
		return nil, errShort
	}
	out := make([]Span, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, readSpanRecord(d))
	}
	return out, d.err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file, fsynced and
// renamed, so readers see the old content or the new, never a part.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}
