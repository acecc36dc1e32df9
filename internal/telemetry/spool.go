package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A Spool is a bounded, crash-safe queue of log records on disk for
// writers that must not lose a record when the store cannot take it now
// (busy flushing, a full disk, a queue in front of it full): the
// gateway's access records. Put appends; Replay hands the records to the
// store in the order they were put and forgets them once stored.
//
// On disk it is a directory of segments in the write-ahead log's framing
// ([length][crc32c][type][payload]) and a cursor file naming the first
// record not yet stored. Each Put is one write(2), so a killed process
// loses nothing it spilled (the page cache keeps it); a torn last frame
// (power loss mid-write) is cut off at open. The cursor moves after the
// store has acknowledged a batch; a crash between the two would replay
// that batch, so after an open the first frames are looked up by trace id
// in the store and skipped when already there: each record is stored once.
//
// What does not fit under the bound is lost, counted (Lost, the metric
// pave_access_spool_lost_records_total) and logged, never dropped silently.
type Spool struct {
	dir      string
	maxBytes int64
	log      *slog.Logger

	mu      sync.Mutex
	w       *os.File // the segment being appended to; nil until the next Put
	wseq    uint64
	wsize   int64
	rseq    uint64 // cursor: segment and offset of the first record not stored
	roff    int64
	bytes   int64 // bytes from the cursor to the end
	records int64 // records from the cursor to the end
	unsure  bool  // the frames at the cursor may already be stored (see above)

	replayMu sync.Mutex // one Replay at a time
	kick     chan struct{}

	spilled, replayed, lost atomic.Uint64
	lastWarn                atomic.Int64 // unix nanos of the last "lost" warning
}

const (
	spoolSegmentBytes = 4 << 20
	spoolReplayBatch  = 4096
	spoolCursor       = "cursor"
)

// ErrSpoolFull means the spool's disk bound is reached: the records were
// lost (and counted).
var ErrSpoolFull = errors.New("spool is full")

// OpenSpool opens (or creates) the spool in dir, holding at most maxBytes
// of records not yet stored.
func OpenSpool(dir string, maxBytes int64, log *slog.Logger) (*Spool, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("spool %s: the bound must be positive, not %d bytes", dir, maxBytes)
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, log: log, kick: make(chan struct{}, 1)}
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	return s, nil
}

func (s *Spool) cursorPath() string { return filepath.Join(s.dir, spoolCursor) }

func (s *Spool) segPath(seq uint64) string { return filepath.Join(s.dir, segmentName(seq)) }

func (s *Spool) recover() error {
	seqs, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	if b, err := os.ReadFile(s.cursorPath()); err == nil {
		seqText, offText, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
		seq, err1 := strconv.ParseUint(seqText, 10, 64)
		off, err2 := strconv.ParseInt(offText, 10, 64)
		if !ok || err1 != nil || err2 != nil || off < 0 {
			return fmt.Errorf("%s holds %q, not \"<segment> <offset>\"; remove the spool directory to start empty", s.cursorPath(), b)
		}
		s.rseq, s.roff = seq, off
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	} else if len(seqs) > 0 {
		s.rseq = seqs[0]
	}
	s.wseq = max(s.rseq, 1)
	for _, seq := range seqs {
		p := s.segPath(seq)
		if seq < s.rseq {
			os.Remove(p) // stored before the crash; its removal was cut short
			continue
		}
		s.wseq = seq
		start := int64(0)
		if seq == s.rseq {
			start = s.roff
		}
		torn, err := readSegment(p, func(typ byte, payload []byte) error { return nil })
		if err != nil {
			return err
		}
		end, err := fileSize(p)
		if err != nil {
			return err
		}
		if torn >= 0 {
			s.log.Warn("access spool segment ends in a partial record (a write cut by a crash); cut off", "segment", p, "offset", torn)
			if err := os.Truncate(p, torn); err != nil {
				return err
			}
			end = torn
		}
		if start > end {
			return fmt.Errorf("cursor offset %d is past the end (%d) of %s", start, end, p)
		}
		n, err := countFrames(p, start, end)
		if err != nil {
			return err
		}
		s.records += n
		s.bytes += end - start
		if seq == seqs[len(seqs)-1] {
			s.wsize = end
		}
	}
	if s.rseq == 0 {
		s.rseq = s.wseq
	}
	s.unsure = s.records > 0
	if s.records > 0 {
		s.log.Info("access spool holds records from before a restart; they will be stored", "records", s.records, "bytes", s.bytes)
	}
	return nil
}

// countFrames counts the records in the frames of path between start and end.
func countFrames(path string, start, end int64) (int64, error) {
	var n int64
	err := eachFrame(path, start, end, func(_ int64, payload []byte) error {
		d := &dec{b: payload[1:]}
		n += int64(d.uvarint())
		return d.err
	})
	return n, err
}

// eachFrame calls fn with the end offset and body (type byte first) of
// every frame of path between start and end, which recover has checked.
func eachFrame(path string, start, end int64, fn func(next int64, body []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data := make([]byte, end-start)
	if _, err := f.ReadAt(data, start); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	off := 0
	for off < len(data) {
		if len(data)-off < walHeader+1 {
			return fmt.Errorf("%w: %s: a partial record at offset %d", ErrCorrupt, path, start+int64(off))
		}
		n := int(uint32(data[off]) | uint32(data[off+1])<<8 | uint32(data[off+2])<<16 | uint32(data[off+3])<<24)
		if n < 1 || off+walHeader+n > len(data) {
			return fmt.Errorf("%w: %s: a record at offset %d runs past the end", ErrCorrupt, path, start+int64(off))
		}
		off += walHeader + n
		if err := fn(start+int64(off), data[off-n:off]); err != nil {
			return err
		}
	}
	return nil
}

func fileSize(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Put appends logs as one batch. When the bound would be exceeded they
// are counted as lost and ErrSpoolFull is returned.
func (s *Spool) Put(logs []Log) error {
	if len(logs) == 0 {
		return nil
	}
	e := &enc{b: frameBuffer(entryLogs, 256*len(logs))}
	e.uvarint(uint64(len(logs)))
	for i := range logs {
		l := logs[i]
		l.Time = l.Time.UTC()
		appendLogRecord(e, &l)
	}
	frame := sealFrame(e.b)
	err := s.write(frame, len(logs))
	if err != nil {
		s.countLost(len(logs), err)
		return err
	}
	s.spilled.Add(uint64(len(logs)))
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func (s *Spool) write(frame []byte, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+int64(len(frame)) > s.maxBytes {
		return fmt.Errorf("%w: %d bytes held, bound %d", ErrSpoolFull, s.bytes, s.maxBytes)
	}
	if s.w == nil {
		f, err := os.OpenFile(s.segPath(s.wseq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.w = f
	}
	if k, err := s.w.Write(frame); err != nil {
		if k > 0 { // leave no partial frame behind
			if terr := s.w.Truncate(s.wsize); terr != nil {
				s.rotateLocked()
			}
		}
		return fmt.Errorf("spool: %w", err)
	}
	s.wsize += int64(len(frame))
	s.bytes += int64(len(frame))
	s.records += int64(n)
	if s.wsize >= spoolSegmentBytes {
		s.rotateLocked()
	}
	return nil
}

// rotateLocked starts a new segment at the next Put.
func (s *Spool) rotateLocked() {
	if s.w != nil {
		s.w.Sync() // a finished segment need not wait for the page cache
		s.w.Close()
		s.w = nil
	}
	s.wseq++
	s.wsize = 0
}

func (s *Spool) countLost(n int, err error) {
	total := s.lost.Add(uint64(n))
	now := time.Now().UnixNano()
	if last := s.lastWarn.Load(); now-last > int64(10*time.Second) && s.lastWarn.CompareAndSwap(last, now) {
		s.log.Error("access records lost: the spool cannot hold them (raise the spool bound or find why telemetry is not keeping up)",
			"records", n, "lost_total", total, "err", err)
	}
}

// Pending returns the records (and their bytes) waiting to be stored.
func (s *Spool) Pending() (records, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records, s.bytes
}

// Lost returns the records lost since the spool was opened.
func (s *Spool) Lost() uint64 { return s.lost.Load() }

// SpoolSink is where a Spool replays to; a sink that can also look up a
// trace (a Store) lets replay after a crash skip what was already stored.
type SpoolSink interface {
	AppendLogs(ctx context.Context, logs []Log) error
}

type traceLookup interface {
	Trace(ctx context.Context, traceID string) (TraceResult, error)
}

// Replay stores the spooled records in sink in order, until none are left
// or the sink refuses (its error is returned; what was stored before stays
// stored and is not replayed again). It returns the records stored.
func (s *Spool) Replay(ctx context.Context, sink SpoolSink) (int, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	stored := 0
	for {
		s.mu.Lock()
		seq, off, wseq, wsize := s.rseq, s.roff, s.wseq, s.wsize
		s.mu.Unlock()
		end := wsize
		if seq < wseq {
			var err error
			if end, err = fileSize(s.segPath(seq)); errors.Is(err, fs.ErrNotExist) {
				end = 0 // rotated before anything was written to it
			} else if err != nil {
				return stored, fmt.Errorf("spool: %w", err)
			}
		}
		if off < end {
			n, err := s.replaySegment(ctx, sink, seq, off, end)
			stored += n
			if err != nil {
				return stored, err
			}
			continue
		}
		if seq == wseq {
			return stored, nil
		}
		// The segment is done: move the cursor to the next, then remove it.
		if err := s.moveCursor(seq+1, 0, 0, 0); err != nil {
			return stored, err
		}
		os.Remove(s.segPath(seq))
	}
}

// replaySegment stores the frames of segment seq between off and end in
// batches, moving the cursor after each.
func (s *Spool) replaySegment(ctx context.Context, sink SpoolSink, seq uint64, off, end int64) (int, error) {
	var batch []Log
	var batchBytes int64
	stored := 0
	flush := func(next int64) error {
		if len(batch) == 0 {
			return nil
		}
		if err := sink.AppendLogs(ctx, batch); err != nil {
			return err
		}
		if err := s.moveCursor(seq, next, batchBytes, int64(len(batch))); err != nil {
			return err
		}
		stored += len(batch)
		s.replayed.Add(uint64(len(batch)))
		batch, batchBytes = nil, 0
		return nil
	}
	pos := off
	errStop := errors.New("stop")
	err := eachFrame(s.segPath(seq), off, end, func(next int64, body []byte) error {
		logs, err := decodeLogBatch(body[1:])
		if err != nil || body[0] != entryLogs {
			return fmt.Errorf("%w: spool segment %d at offset %d: %v", ErrCorrupt, seq, pos, err)
		}
		size := next - pos
		pos = next
		if s.unsure {
			dup, err := alreadyStored(ctx, sink, logs)
			if err != nil {
				return err
			}
			if dup {
				// Stored before the crash: move past it without storing.
				if err := s.moveCursor(seq, next, size, int64(len(logs))); err != nil {
					return err
				}
				s.log.Info("access spool: a batch stored before a restart is not stored again", "records", len(logs))
				return nil
			}
			s.unsure = false
		}
		batch = append(batch, logs...)
		batchBytes += size
		if len(batch) >= spoolReplayBatch {
			if err := flush(next); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return errStop
		}
		return nil
	})
	if err == nil || errors.Is(err, errStop) {
		err = flush(pos)
	}
	return stored, err
}

// alreadyStored reports whether the first record of a spooled batch is in
// the store (a store takes a batch whole or not at all).
func alreadyStored(ctx context.Context, sink SpoolSink, logs []Log) (bool, error) {
	t, ok := sink.(traceLookup)
	if !ok || len(logs) == 0 || logs[0].TraceID == "" {
		return false, nil
	}
	first := &logs[0]
	tr, err := t.Trace(ctx, first.TraceID)
	if err != nil {
		return false, err
	}
	for i := range tr.Logs {
		l := &tr.Logs[i]
		if l.SpanID == first.SpanID && l.Time.Equal(first.Time) && l.Message == first.Message && l.Service == first.Service {
			return true, nil
		}
	}
	return false, nil
}

// moveCursor records that everything before (seq, off) is stored.
func (s *Spool) moveCursor(seq uint64, off, bytes, records int64) error {
	if err := writeFileAtomic(s.cursorPath(), []byte(fmt.Sprintf("%d %d\n", seq, off))); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.mu.Lock()
	s.rseq, s.roff = seq, off
	s.bytes -= bytes
	s.records -= records
	// Caught up with the writer: start the next Put on a fresh segment so
	// this one can go.
	if seq == s.wseq && off == s.wsize && off > 0 {
		s.rotateLocked()
	}
	s.mu.Unlock()
	return nil
}

// Run replays whenever records are spooled, retrying every interval while
// the sink refuses, until ctx ends.
func (s *Spool) Run(ctx context.Context, sink SpoolSink, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
		if n, _ := s.Pending(); n == 0 {
			continue
		}
		if _, err := s.Replay(ctx, sink); err != nil && !errors.Is(err, ErrBusy) && ctx.Err() == nil &&
			time.Since(lastErr) > 10*time.Second {
			lastErr = time.Now()
			s.log.Warn("access spool: records not stored yet; retrying", "err", err)
		}
	}
}

// Close syncs and closes the segment being written.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil
	}
	err := s.w.Sync()
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	s.w = nil
	return err
}

var (
	descSpoolSpilled = prometheus.NewDesc("pave_access_spool_spilled_records_total",
		"Access records written to the disk spool because telemetry could not take them at once.", nil, nil)
	descSpoolReplayed = prometheus.NewDesc("pave_access_spool_replayed_records_total",
		"Spooled access records stored in telemetry since.", nil, nil)
	descSpoolLost = prometheus.NewDesc("pave_access_spool_lost_records_total",
		"Access records lost because the disk spool was at its bound (or could not be written).", nil, nil)
	descSpoolPending = prometheus.NewDesc("pave_access_spool_pending_records",
		"Access records in the disk spool waiting to be stored.", nil, nil)
	descSpoolBytes = prometheus.NewDesc("pave_access_spool_pending_bytes",
		"Bytes of the disk spool waiting to be stored.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Spool) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpoolSpilled, descSpoolReplayed, descSpoolLost, descSpoolPending, descSpoolBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Spool) Collect(ch chan<- prometheus.Metric) {
	records, bytes := s.Pending()
	ch <- prometheus.MustNewConstMetric(descSpoolSpilled, prometheus.CounterValue, float64(s.spilled.Load()))
	ch <- prometheus.MustNewConstMetric(descSpoolReplayed, prometheus.CounterValue, float64(s.replayed.Load()))
	ch <- prometheus.MustNewConstMetric(descSpoolLost, prometheus.CounterValue, float64(s.lost.Load()))
	ch <- prometheus.MustNewConstMetric(descSpoolPending, prometheus.GaugeValue, float64(records))
	ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(bytes))
}
