package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Counting lines by a field's value: `pave logs --count-by status`,
// GET /api/v1/logs/count?by=status. Row groups wholly inside the query
// (by their time range and field dictionaries) are added up from their
// footers, which the store keeps in memory, without reading them; only the
// groups at the window's edges, or those a condition the dictionaries
// cannot answer leaves open, are read and tested line by line.

// CountResult is how many matching lines hold each value of a field, the
// most frequent first. Lines without the field count under "".
type CountResult struct {
	By       string       `json:"by"`
	Counts   []ValueCount `json:"counts"`
	Total    int          `json:"total"`
	Warnings []string     `json:"warnings,omitempty"`
}

// ValueCount is one value of a count and its lines.
type ValueCount struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// Counter is a store that can count matching lines by a field; the
// embedded store is one.
type Counter interface {
	Count(ctx context.Context, q Query, by string) (CountResult, error)
}

// fieldOf is a line's value of a column or attribute, as where compares it.
func fieldOf(l *Log, key string) string {
	if f := firstClass[key]; f != nil {
		return f(l)
	}
	v, _ := l.Attrs.Get(key)
	return v
}

// Count counts the lines matching q (its limit and cursor aside) by the
// value of field by: a column (service, status, route, …) or an attribute.
func (s *Embedded) Count(ctx context.Context, q Query, by string) (CountResult, error) {
	if !keyRE.MatchString(by) {
		return CountResult{}, &QueryError{"by", fmt.Errorf("%q: want a field name such as status or route", by)}
	}
	if q.Cursor != "" {
		return CountResult{}, &QueryError{"cursor", fmt.Errorf("a count takes no cursor")}
	}
	now := s.o.Now()
	counts := map[string]int{}
	add := func(l *Log) {
		if q.matches(l) && !s.expired(l.Service, l.Time, now) {
			counts[fieldOf(l, by)]++
		}
	}
	s.filesMu.RLock()
	defer s.filesMu.RUnlock()
	s.mu.RLock()
	for _, m := range append(append([]*memtable{}, s.frozen...), s.active) {
		m.eachLog(add)
	}
	s.mu.RUnlock()
	rows := q.rowFilter()
	plan := rows.plan
	trace := hashKey(q.TraceID)
	var warnings []string
	blocks := s.blocksFor(func(m *blockMeta) bool { return q.mayMatchBlock(m) && plan.anyGroup(m) })
	// First the footers: the groups each block adds up without reading,
	// and those it must read; then the reads, the cold ones fetched ahead
	// in parallel (only their groups' ranges).
	type blockRead struct {
		c              candidate
		read, timeOnly []*groupMeta
	}
	var reads []blockRead
	for _, c := range blocks {
		m := c.meta
		var read, timeOnly []*groupMeta
		for gi := range m.Groups {
			g := &m.Groups[gi]
			if q.TraceID != "" && !g.Trace.has(trace) || !plan.mayMatch(m, g) {
				continue
			}
			if d := g.dict(by); d != nil && plan.allMatchButTime(m, g) && s.freshGroup(g, now) {
				if plan.allMatch(m, g) {
					for i, v := range d.Values {
						counts[v] += d.Counts[i]
					}
					continue
				}
				// Only the time is left to test: read the time column
				// and the counted one, nothing else.
				timeOnly = append(timeOnly, g)
				continue
			}
			read = append(read, g)
		}
		if len(read) == 0 && len(timeOnly) == 0 {
			continue
		}
		c.need = func(_ *blockMeta, g *groupMeta) bool { return slices.Contains(read, g) || slices.Contains(timeOnly, g) }
		reads = append(reads, blockRead{c, read, timeOnly})
	}
	toRead := make([]candidate, len(reads))
	for i := range reads {
		toRead[i] = reads[i].c
	}
	defer s.deferFills(toRead)()
	ahead, stopAhead := context.WithCancel(ctx)
	defer stopAhead()
	for i, br := range reads {
		if err := ctx.Err(); err != nil {
			return CountResult{}, err
		}
		s.prefetch(ahead, toRead, i)
		m := br.c.meta
		err := s.withBlock(ctx, toRead[i], func(src io.ReaderAt) error {
			gs := getGroupScratch(len(logColumns))
			defer putGroupScratch(gs)
			for _, g := range br.timeOnly {
				if err := countInWindow(src, m, g, by, plan.from, plan.to, counts); err != nil {
					return err
				}
			}
			for _, g := range br.read {
				gd, buf, err := groupDataTo(src, m, g, gs.group)
				if err != nil {
					return err
				}
				gs.group = buf
				logs, err := decodeLogGroupTo(nil, gd, m, g, q.TraceID, rows, gs)
				if err != nil {
					return err
				}
				for i := range logs {
					add(&logs[i])
				}
			}
			return nil
		})
		toRead[i].ahead = nil
		if err != nil {
			warnings = append(warnings, err.Error())
		}
	}
	res := CountResult{By: by, Counts: make([]ValueCount, 0, len(counts)), Warnings: warnings}
	for v, n := range counts {
		res.Counts = append(res.Counts, ValueCount{v, n})
		res.Total += n
	}
	slices.SortFunc(res.Counts, func(a, b ValueCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Value, b.Value))
	})
	return res, nil
}

// freshGroup is true when retention hides none of the group's lines: its
// oldest line is within every one of its services' retention.
func (s *Embedded) freshGroup(g *groupMeta, now time.Time) bool {
	d := g.dict("service")
	if d == nil {
		return false
	}
	oldest := time.Unix(0, g.MinT)
	for _, svc := range d.Values {
		if s.expired(svc, oldest, now) {
			return false
		}
	}
	return true
}

// ParseCountQuery reads a count's parameters: by (the field, required) and
// the filters of ParseQuery; limit and cursor do not apply to a count.
func ParseCountQuery(v url.Values, now time.Time) (Query, string, error) {
	by := v.Get("by")
	if by == "" {
		return Query{}, "", &QueryError{"by", fmt.Errorf("missing: name the field to count by, e.g. by=status")}
	}
	if !keyRE.MatchString(by) {
		return Query{}, "", &QueryError{"by", fmt.Errorf("%q: want a field name such as status or route", by)}
	}
	for _, p := range []string{"limit", "cursor", "format"} {
		if v.Has(p) {
			return Query{}, "", &QueryError{p, fmt.Errorf("a count takes no %s", p)}
		}
	}
	rest := url.Values{}
	for k, vs := range v {
		if k != "by" {
			rest[k] = vs
		}
	}
	q, err := ParseQuery(rest, now)
	return q, by, err
}

// countInWindow counts a group's lines in [from, to) by the value of by, a
// dictionary field, reading only the time column and by's.
func countInWindow(data io.ReaderAt, m *blockMeta, g *groupMeta, by string, from, to int64, counts map[string]int) error {
	tc, err := groupColumn(data, m, g, "time")
	if err != nil {
		return err
	}
	bc, err := groupColumn(data, m, g, by)
	if err != nil {
		return err
	}
	var t int64
	for i := 0; i < g.Rows; i++ {
		t += tc.varint()
		var v string
		if by == "status" {
			if n := bc.varint(); n != 0 {
				v = strconv.FormatInt(n, 10)
			}
		} else {
			v = string(bc.rawStr())
		}
		if t >= from && t < to {
			counts[v]++
		}
	}
	if tc.err != nil || bc.err != nil {
		return fmt.Errorf("%w: block %s columns time, %s: %v", ErrCorrupt, m.Name, by, errors.Join(tc.err, bc.err))
	}
	return nil
}
