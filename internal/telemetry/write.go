package telemetry

import (
	"bytes"
	"context"
	"fmt"
)

// The write path: a batch is framed, queued to the group commit, written
// to the write-ahead log with one fsync for all queued batches, made
// visible in memory, then acknowledged.

// AppendLogs stores logs durably; it returns after the WAL fsync. The
// memory table keeps the batch in its WAL encoding (memtable.go), not the
// slice.
func (s *Embedded) AppendLogs(ctx context.Context, logs []Log) error {
	if len(logs) == 0 {
		return nil
	}
	e := &enc{b: frameBuffer(entryLogs, 256*len(logs))}
	e.uvarint(uint64(len(logs)))
	approx := 0
	for i := range logs {
		l := &logs[i]
		l.Time = l.Time.UTC()
		if l.Level == "" {
			l.Level = "INFO"
		}
		appendLogRecord(e, l)
		approx += l.approxSize()
	}
	return s.submit(ctx, &commit{frame: sealFrame(e.b), kind: entryLogs, count: len(logs), approx: approx, size: len(e.b)})
}

// AppendSpans stores spans durably.
func (s *Embedded) AppendSpans(ctx context.Context, spans []Span) error {
	if len(spans) == 0 {
		return nil
	}
	e := &enc{b: frameBuffer(entrySpans, 256*len(spans))}
	e.uvarint(uint64(len(spans)))
	approx := 0
	for i := range spans {
		spans[i].Start, spans[i].End = spans[i].Start.UTC(), spans[i].End.UTC()
		appendSpanRecord(e, &spans[i])
		approx += spans[i].approxSize()
	}
	return s.submit(ctx, &commit{frame: sealFrame(e.b), kind: entrySpans, count: len(spans), approx: approx, size: len(e.b)})
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
				// The memory table keeps the frame's payload: the
				// encoding made for the log is the compact copy in memory.
				if s.addToMem(c.kind, compactPayload(c.frame[walHeader+1:]), c.count, c.approx) >= s.o.FlushBytes {
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

// compactPayload is the frame payload the memory table keeps: the frame
// was allocated for 256 bytes a record, and a kit line takes about 140, so
// one with much room to spare is copied to its length rather than holding
// the spare bytes until the flush.
func compactPayload(p []byte) []byte {
	if cap(p)-len(p) > len(p)/8 {
		return bytes.Clone(p)
	}
	return p
}
