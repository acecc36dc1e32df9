package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure the embedded store. Zero values take the defaults.
type Options struct {
	Dir           string        // data directory (wal/, hot/, cache/)
	Blob          Blob          // cold tier; default DirBlob{Dir/cold}
	FlushBytes    int           // flush the in-memory table at this size (8 MiB)
	FlushInterval time.Duration // …or this age (5s)
	MaxMemBytes   int           // refuse writes (ErrBusy) above this (32 MiB)
	BlockRows     int           // rows per block at most (16384)
	Partition     time.Duration // partition length (1h)
	ColdAfter     time.Duration // partitions older than this move to Blob (24h; <0 never)
	// Retention per service; DefaultRetention for the rest (0 keeps forever).
	Retention        map[string]time.Duration
	DefaultRetention time.Duration
	MaintainEvery    time.Duration // compaction, retention and cold moves (1m; <0 only by call)
	CreateSegment    CreateFunc    // WAL segment files; tests inject failures
	Log              *slog.Logger
	Now              func() time.Time
}

// memtable holds committed batches as they came: appending a batch never
// copies the records already held.
type memtable struct {
	logs   [][]Log
	spans  [][]Span
	lines  int // log lines and spans
	bytes  int
	walSeq uint64 // once frozen: the last WAL segment it covers
}

func (m *memtable) eachLog(fn func(*Log)) {
	for _, b := range m.logs {
		for i := range b {
			fn(&b[i])
		}
	}
}

func (m *memtable) eachSpan(fn func(*Span)) {
	for _, b := range m.spans {
		for i := range b {
			fn(&b[i])
		}
	}
}

type coldBlock struct{ meta *blockMeta }

// Embedded is the single-machine telemetry store.
type Embedded struct {
	o       Options
	log     *slog.Logger
	hotDir  string
	walDir  string
	cache   string
	w       *wal
	commits chan *commit
	flushCh chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup

	mu      sync.RWMutex
	active  *memtable
	frozen  []*memtable
	memSize int
	hot     map[string]*blockMeta // by partition/name
	cold    map[string]*blockMeta // by partition/name
	corrupt map[string]string     // by partition/name: why it is not served
	flushed uint64

	blocksRead atomic.Int64 // blocks read from disk or blob, for Stats

	cachingMu sync.Mutex
	caching   map[string]bool // cold blocks being written to the local cache
	cacheWG   sync.WaitGroup

	filesMu  sync.RWMutex // readers of block files vs. their deletion
	flushMu  sync.Mutex   // one flush or maintenance at a time
	closeErr error
	closed   bool
}

type commit struct {
	frame  []byte
	logs   []Log
	spans  []Span
	size   int
	rotate bool
	done   chan error
}

var _ Store = (*Embedded)(nil)

// Open opens (or creates) the store in o.Dir and recovers it: blocks of an
// unfinished flush are removed, unflushed WAL segments are replayed.
func Open(ctx context.Context, o Options) (*Embedded, error) {
	if o.Dir == "" {
		return nil, errors.New("telemetry: Options.Dir is required")
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.FlushBytes, 8<<20)
	def(&o.MaxMemBytes, 32<<20)
	def(&o.BlockRows, 16384)
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Second
	}
	if o.Partition <= 0 {
		o.Partition = time.Hour
	}
	if o.ColdAfter == 0 {
		o.ColdAfter = 24 * time.Hour
	}
	if o.MaintainEvery == 0 {
		o.MaintainEvery = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CreateSegment == nil {
		o.CreateSegment = createOSFile
	}
	if o.Blob == nil {
		o.Blob = DirBlob{Root: filepath.Join(o.Dir, "cold")}
	}
	s := &Embedded{o: o, log: o.Log, hotDir: filepath.Join(o.Dir, "hot"), walDir: filepath.Join(o.Dir, "wal"),
		cache: filepath.Join(o.Dir, "cache"), commits: make(chan *commit, 1024), flushCh: make(chan struct{}, 1),
		stop: make(chan struct{}), active: &memtable{}, hot: map[string]*blockMeta{}, cold: map[string]*blockMeta{}, caching: map[string]bool{},
		corrupt: map[string]string{}}
	for _, d := range []string{s.hotDir, s.walDir, s.cache} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
	}
	if err := s.recover(ctx); err != nil {
		return nil, err
	}
	s.wg.Add(2)
	go s.committer()
	go s.flusher()
	return s, nil
}

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
				logs, err := decodeLogBatch(payload)
				if err != nil {
					return err
				}
				s.addToMem(logs, nil)
			case entrySpans:
				spans, err := decodeSpanBatch(payload)
				if err != nil {
					return err
				}
				s.addToMem(nil, spans)
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

func (s *Embedded) addToMem(logs []Log, spans []Span) int {
	n := 0
	for i := range logs {
		n += logs[i].approxSize()
	}
	for i := range spans {
		n += spans[i].approxSize()
	}
	if len(logs) > 0 {
		s.active.logs = append(s.active.logs, logs)
	}
	if len(spans) > 0 {
		s.active.spans = append(s.active.spans, spans)
	}
	s.active.lines += len(logs) + len(spans)
	s.active.bytes += n
	s.memSize += n
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

// Close flushes what is in memory and stops the background work.
func (s *Embedded) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	s.mu.Unlock()
	err := s.Flush(context.Background())
	close(s.stop)
	s.wg.Wait()
	s.cacheWG.Wait()
	s.w.close()
	s.closeErr = err
	return err
}

// AppendLogs stores logs durably; it returns after the WAL fsync. The
// store keeps the slice (see Store).
func (s *Embedded) AppendLogs(ctx context.Context, logs []Log) error {
	if len(logs) == 0 {
		return nil
	}
	e := &enc{b: frameBuffer(entryLogs, 256*len(logs))}
	e.uvarint(uint64(len(logs)))
	for i := range logs {
		l := &logs[i]
		l.Time = l.Time.UTC()
		if l.Level == "" {
			l.Level = "INFO"
		}
		appendLogRecord(e, l)
	}
	return s.submit(ctx, &commit{frame: sealFrame(e.b), logs: logs, size: len(e.b)})
}

// AppendSpans stores spans durably.
func (s *Embedded) AppendSpans(ctx context.Context, spans []Span) error {
	if len(spans) == 0 {
		return nil
	}
	e := &enc{b: frameBuffer(entrySpans, 256*len(spans))}
	e.uvarint(uint64(len(spans)))
	for i := range spans {
		spans[i].Start, spans[i].End = spans[i].Start.UTC(), spans[i].End.UTC()
		appendSpanRecord(e, &spans[i])
	}
	return s.submit(ctx, &commit{frame: sealFrame(e.b), spans: spans, size: len(e.b)})
}

func (s *Embedded) submit(ctx context.Context, c *commit) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.done = make(chan error, 1)
	// Checked and queued under the lock, so nothing is queued once Close
	// has started: everything queued before is written by Close's flush.
	s.mu.RLock()
	closed, full := s.closed, s.overBound()
	queued := false
	if !closed && !full {
		select {
		case s.commits <- c:
			queued = true
		default:
		}
	}
	s.mu.RUnlock()
	if closed {
		return fmt.Errorf("%w: store is closed", ErrUnavailable)
	}
	if !queued {
		s.kickFlush()
		return ErrBusy
	}
	// Once queued the write happens; wait for its outcome even if the
	// caller gives up, so an error is never mistaken for a success.
	return <-c.done
}

// Busy reports whether writes are refused (ErrBusy) until a flush catches
// up; the intake asks before decoding a batch.
func (s *Embedded) Busy() bool {
	s.mu.RLock()
	full := s.overBound()
	s.mu.RUnlock()
	if full {
		s.kickFlush()
	}
	return full
}

// overBound: the memory table is past its bound. Call with s.mu held.
func (s *Embedded) overBound() bool { return s.memSize > s.o.MaxMemBytes }

func (s *Embedded) kickFlush() {
	select {
	case s.flushCh <- struct{}{}:
	default:
	}
}

// committer is the group commit: it takes every queued batch, writes them
// with one fsync, makes them visible, then acknowledges them.
func (s *Embedded) committer() {
	defer s.wg.Done()
	var group []*commit
	for {
		select {
		case c := <-s.commits:
			group = append(group[:0], c)
		case <-s.stop:
			return
		}
		size := group[0].size
	more:
		for size < 4<<20 && !group[len(group)-1].rotate {
			select {
			case c := <-s.commits:
				group = append(group, c)
				size += c.size
			default:
				break more
			}
		}
		var frames [][]byte
		for _, c := range group {
			if !c.rotate {
				frames = append(frames, c.frame)
			}
		}
		var err error
		if len(frames) > 0 {
			err = s.w.write(frames)
		}
		s.mu.Lock()
		for _, c := range group {
			if c.rotate {
				continue
			}
			if err == nil {
				if s.addToMem(c.logs, c.spans) >= s.o.FlushBytes {
					s.kickFlush()
				}
			}
		}
		var rotErr error
		if group[len(group)-1].rotate {
			old, rerr := s.w.rotate()
			rotErr = rerr
			if s.active.lines > 0 {
				s.active.walSeq = old
				s.frozen = append(s.frozen, s.active)
				s.active = &memtable{}
			}
		}
		s.mu.Unlock()
		for _, c := range group {
			if c.rotate {
				c.done <- rotErr
			} else {
				c.done <- err
			}
		}
	}
}

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
	logsBy := map[string][]*Log{}
	m.eachLog(func(l *Log) {
		p := parts.of(l.Time, s.o.Partition)
		logsBy[p] = append(logsBy[p], l)
	})
	spansBy := map[string][]*Span{}
	m.eachSpan(func(sp *Span) {
		p := parts.of(sp.Start, s.o.Partition)
		spansBy[p] = append(spansBy[p], sp)
	})
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
	for _, p := range sortedKeys(logsBy) {
		logs := logsBy[p]
		sortLogs(logs)
		for len(logs) > 0 {
			n := min(len(logs), s.o.BlockRows)
			chunk := logs[:n]
			logs = logs[n:]
			if err := write(p, "logs", func(mm *blockMeta) ([]byte, error) { return encodeLogBlock(chunk, mm) }); err != nil {
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

// openBlock returns a reader of a block from the hot tier, or from the
// local cache of the cold tier, fetching it from the blob store on a miss.
// Close it after use.
func (s *Embedded) openBlock(ctx context.Context, m *blockMeta, coldTier bool) (blockSource, error) {
	if !coldTier {
		return os.Open(filepath.Join(s.hotDir, m.Partition, m.Name))
	}
	cached := filepath.Join(s.cache, m.Partition, m.Name)
	// A cached copy is trusted only at its full size; its column checksums
	// are checked on every read like any block's, and a failing copy is
	// dropped and fetched again (see decodeLogsOf).
	if f, err := os.Open(cached); err == nil {
		if st, err := f.Stat(); err == nil && st.Size() == m.Size {
			return f, nil
		}
		f.Close()
	}
	key := m.Partition + "/" + m.Name
	b, err := s.o.Blob.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	s.keepCached(key, cached, b)
	return nopCloser{bytes.NewReader(b)}, nil
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
	}()
}

type blockSource interface {
	io.ReaderAt
	io.Closer
}

type nopCloser struct{ *bytes.Reader }

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
	meta *blockMeta
	cold bool
}

// blocksFor snapshots the blocks a filter may need, newest first.
func (s *Embedded) blocksFor(keep func(*blockMeta) bool) []candidate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []candidate
	for k, m := range s.hot {
		if _, bad := s.corrupt[k]; !bad && keep(m) {
			out = append(out, candidate{m, false})
		}
	}
	for k, m := range s.cold {
		if _, bad := s.corrupt[k]; !bad && keep(m) {
			out = append(out, candidate{m, true})
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
	var out []Log
	err := s.withBlock(ctx, c, func(src io.ReaderAt) (err error) {
		out, err = decodeLogRows(src, c.meta, traceID)
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
	try := func() (bool, error) {
		src, err := s.openBlock(ctx, c.meta, c.cold)
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

// Query returns a page of matching log lines, newest first.
func (s *Embedded) Query(ctx context.Context, q Query) (Result, error) {
	now := s.o.Now()
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	var cursorT int64 = math.MaxInt64
	skip := 0
	if q.Cursor != "" {
		t, n, err := parseCursor(q.Cursor)
		if err != nil {
			return Result{}, &QueryError{"cursor", err}
		}
		cursorT, skip = t, n
	}
	want := limit + skip + 1
	// Held across the snapshot and the reads: compaction and cold moves
	// delete the files they replaced only after the queries that may still
	// read them are done.
	s.filesMu.RLock()
	defer s.filesMu.RUnlock()
	var cands []Log
	keep := func(l *Log) {
		if l.Time.UnixNano() <= cursorT && q.matches(l) && !s.expired(l.Service, l.Time, now) {
			cands = append(cands, *l)
		}
	}
	s.mu.RLock()
	for _, m := range append(append([]*memtable{}, s.frozen...), s.active) {
		m.eachLog(keep)
	}
	s.mu.RUnlock()
	var warnings []string
	blocks := s.blocksFor(q.mayMatchBlock)
	for i, c := range blocks {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		// Stop once the page is full with lines newer than anything the
		// remaining blocks hold.
		if len(cands) >= want {
			sort.Slice(cands, func(a, b int) bool { return newestFirst(&cands[a], &cands[b]) })
			cands = cands[:want]
			if cands[want-1].Time.UnixNano() > blocks[i].meta.MaxTime {
				break
			}
		}
		logs, err := s.decodeLogsOf(ctx, c, q.TraceID)
		if err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		for j := range logs {
			keep(&logs[j])
		}
	}
	res := q.page(cands)
	res.Warnings = warnings
	return res, nil
}

// Trace returns every span and log line of a trace, oldest first. Blocks
// whose bloom filter rules the trace out are never read.
func (s *Embedded) Trace(ctx context.Context, traceID string) (TraceResult, error) {
	traceID = strings.ToLower(traceID)
	if err := ValidTraceID(traceID); err != nil {
		return TraceResult{}, &QueryError{"trace_id", err}
	}
	now := s.o.Now()
	res := TraceResult{TraceID: traceID, Spans: []Span{}, Logs: []Log{}}
	s.filesMu.RLock()
	defer s.filesMu.RUnlock()
	s.mu.RLock()
	for _, m := range append(append([]*memtable{}, s.frozen...), s.active) {
		m.eachLog(func(l *Log) {
			if l.TraceID == traceID {
				res.Logs = append(res.Logs, *l)
			}
		})
		m.eachSpan(func(sp *Span) {
			if sp.TraceID == traceID {
				res.Spans = append(res.Spans, *sp)
			}
		})
	}
	s.mu.RUnlock()
	key := hashKey(traceID)
	blocks := s.blocksFor(func(m *blockMeta) bool { return m.Trace.has(key) })
	for _, c := range blocks {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if c.meta.Kind == "spans" {
			spans, err := s.decodeSpansOf(ctx, c, traceID)
			if err != nil {
				res.Warnings = append(res.Warnings, err.Error())
				continue
			}
			for i := range spans {
				if spans[i].TraceID == traceID && !s.expired(spans[i].Service, spans[i].Start, now) {
					res.Spans = append(res.Spans, spans[i])
				}
			}
			continue
		}
		logs, err := s.decodeLogsOf(ctx, c, traceID)
		if err != nil {
			res.Warnings = append(res.Warnings, err.Error())
			continue
		}
		for i := range logs {
			if logs[i].TraceID == traceID && !s.expired(logs[i].Service, logs[i].Time, now) {
				res.Logs = append(res.Logs, logs[i])
			}
		}
	}
	sort.SliceStable(res.Spans, func(i, j int) bool { return res.Spans[i].Start.Before(res.Spans[j].Start) })
	sort.SliceStable(res.Logs, func(i, j int) bool { return res.Logs[i].Time.Before(res.Logs[j].Time) })
	return res, nil
}

// Stats is the store's size by tier.
type Stats struct {
	HotBytes     int64             `json:"hot_bytes"`
	HotBlocks    int               `json:"hot_blocks"`
	ColdBytes    int64             `json:"cold_bytes"`
	ColdBlocks   int               `json:"cold_blocks"`
	CacheBytes   int64             `json:"cache_bytes"`
	WALBytes     int64             `json:"wal_bytes"`
	MemoryBytes  int               `json:"memory_bytes"`
	MemoryLines  int               `json:"memory_records"`
	Records      int64             `json:"records"`
	HotPartition []string          `json:"hot_partitions"`
	ColdPart     []string          `json:"cold_partitions"`
	Corrupt      map[string]string `json:"corrupt,omitempty"`
	// BlocksRead counts block reads since start: a trace lookup should add
	// only the few blocks whose bloom filter matches.
	BlocksRead int64 `json:"blocks_read"`
}

// Stats reports bytes per tier and blocks not served because corrupt.
func (s *Embedded) Stats() Stats {
	s.mu.RLock()
	var st Stats
	hp, cp := map[string]bool{}, map[string]bool{}
	for _, m := range s.hot {
		st.HotBytes += m.Size
		st.HotBlocks++
		st.Records += int64(m.Count)
		hp[m.Partition] = true
	}
	for _, m := range s.cold {
		st.ColdBytes += m.Size
		st.ColdBlocks++
		st.Records += int64(m.Count)
		cp[m.Partition] = true
	}
	for _, m := range append(append([]*memtable{}, s.frozen...), s.active) {
		st.MemoryLines += m.lines
	}
	st.Records += int64(st.MemoryLines)
	st.MemoryBytes = s.memSize
	st.BlocksRead = s.blocksRead.Load()
	if len(s.corrupt) > 0 {
		st.Corrupt = map[string]string{}
		for k, v := range s.corrupt {
			st.Corrupt[k] = v
		}
	}
	s.mu.RUnlock()
	st.HotPartition, st.ColdPart = sortedKeys(hp), sortedKeys(cp)
	st.CacheBytes = dirSize(s.cache)
	st.WALBytes = dirSize(s.walDir)
	return st
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
