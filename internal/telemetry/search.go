package telemetry

import (
	"context"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Answering queries: a page of log lines, and a whole trace.

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
	accept := func(l *Log) bool {
		return l.Time.UnixNano() <= cursorT && q.matches(l) && !s.expired(l.Service, l.Time, now)
	}
	page := &pageBound{want: want, accept: accept}
	keep := func(l *Log) {
		if accept(l) {
			cands = append(cands, *l)
			page.add(l.Time.UnixNano())
		}
	}
	s.mu.RLock()
	for _, m := range append(append([]*memtable{}, s.frozen...), s.active) {
		m.eachLog(keep)
	}
	s.mu.RUnlock()
	var warnings []string
	rows := q.rowFilter()
	rows.page = page
	blocks := s.blocksFor(func(m *blockMeta) bool { return q.mayMatchBlock(m) && rows.plan.anyGroup(m) })
	blocks = s.pageNeeds(blocks, rows.plan, want, now)
	traceKey := hashKey(q.TraceID)
	for i := range blocks {
		blocks[i].need = func(m *blockMeta, g *groupMeta) bool { return logGroupWanted(m, g, traceKey, q.TraceID, rows) }
	}
	s.useNeedles(blocks, rows.plan)
	defer s.deferFills(blocks)()
	ahead, stopAhead := context.WithCancel(ctx)
	defer stopAhead()
	for i := range blocks {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		s.prefetch(ahead, blocks, i)
		c := blocks[i]
		// Stop once the page is full with lines newer than anything the
		// remaining blocks hold.
		if len(cands) >= want {
			sort.Slice(cands, func(a, b int) bool { return newestFirst(&cands[a], &cands[b]) })
			cands = cands[:want]
			if cands[want-1].Time.UnixNano() > blocks[i].meta.MaxTime {
				break
			}
		}
		var logs []Log
		var err error
		if c.needles != nil {
			logs, err = s.readNeedles(c, q.TraceID, rows)
		}
		if c.needles == nil || err != nil {
			logs, err = s.decodeLogsWhere(ctx, c, q.TraceID, rows)
		}
		blocks[i].ahead = nil // its bytes are garbage once decoded
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

// pageNeeds drops the blocks (newest first) that a page of want lines
// surely never reaches: those older than want lines that the newer blocks'
// footers already count as matches (surelyMatching). The page's floor
// stops the reading there anyway (Query's loop), but read-ahead and
// prefetch would have asked for every block's groups before it: a field
// filter whose page the newest hour fills fetched the groups of the whole
// data from the blob store, and had the disk read them when cold. Lines
// in the memory table are not counted, which only keeps more blocks.
func (s *Embedded) pageNeeds(blocks []candidate, p *groupPlan, want int, now time.Time) []candidate {
	type sure struct {
		minT int64 // the group's oldest line
		n    int   // lines surely kept
	}
	var sures []sure
	for j := range blocks {
		m := blocks[j].meta
		have := 0
		for _, x := range sures {
			if x.minT > m.MaxTime {
				have += x.n
			}
		}
		if have >= want {
			return blocks[:j]
		}
		if s.anyExpired(m, now) {
			continue // retention drops some of its lines at query time
		}
		for gi := range m.Groups {
			if n := p.surelyMatching(m, &m.Groups[gi]); n > 0 {
				sures = append(sures, sure{m.Groups[gi].MinT, n})
			}
		}
	}
	return blocks
}

// traceReaders bounds the blocks a trace lookup reads at once.
const traceReaders = 16

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
		m.eachLogWith(traceID, func(l *Log) {
			if l.TraceID == traceID {
				res.Logs = append(res.Logs, *l)
			}
		})
		m.eachSpanWith(traceID, func(sp *Span) {
			if sp.TraceID == traceID {
				res.Spans = append(res.Spans, *sp)
			}
		})
	}
	s.mu.RUnlock()
	key := hashKey(traceID)
	blocks := s.blocksFor(func(m *blockMeta) bool { return m.Trace.has(key) })
	for i := range blocks {
		blocks[i].need = func(_ *blockMeta, g *groupMeta) bool { return g.Trace.has(key) }
	}
	defer s.deferFills(blocks)()
	s.readAheadLocal(blocks, 0)
	// The blocks the filters name are read in parallel: after a restart
	// with a cold page cache each is a disk read (a round trip to the blob
	// store for a cold block, fetching only the row groups that may hold
	// the trace), and a trace's lines lie in several blocks (one per
	// service it crossed); read one after another, the lookup's time grew
	// with their number and with every slow read among them.
	type found struct {
		spans []Span
		logs  []Log
		err   error
	}
	parts := make([]found, len(blocks))
	sem := make(chan struct{}, traceReaders)
	var wg sync.WaitGroup
	for i := range blocks {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := &parts[i]
			if blocks[i].meta.Kind == "spans" {
				p.spans, p.err = s.decodeSpansOf(ctx, blocks[i], traceID)
			} else {
				p.logs, p.err = s.decodeLogsOf(ctx, blocks[i], traceID)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, p := range parts {
		if p.err != nil {
			res.Warnings = append(res.Warnings, p.err.Error())
			continue
		}
		for i := range p.spans {
			if p.spans[i].TraceID == traceID && !s.expired(p.spans[i].Service, p.spans[i].Start, now) {
				res.Spans = append(res.Spans, p.spans[i])
			}
		}
		for i := range p.logs {
			if p.logs[i].TraceID == traceID && !s.expired(p.logs[i].Service, p.logs[i].Time, now) {
				res.Logs = append(res.Logs, p.logs[i])
			}
		}
	}
	sort.SliceStable(res.Spans, func(i, j int) bool { return res.Spans[i].Start.Before(res.Spans[j].Start) })
	sort.SliceStable(res.Logs, func(i, j int) bool { return res.Logs[i].Time.Before(res.Logs[j].Time) })
	return res, nil
}
