package telemetry

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Skip indexes of block format 3 and later: what each row group's footer entry says
// of its rows, so a query rules groups (and whole blocks) out before
// reading them, and a count adds up groups without decompressing them.
//
//   - the group's time range;
//   - a bloom filter of the message's tokens (words: runs of letters,
//     digits, _ and non-ASCII bytes), and of each token's first and last
//     four bytes, so a substring whose edges cut words still finds its
//     groups (see needleKeys);
//   - a bloom filter of the attribute values' whole tokens;
//   - for the low-cardinality fields (dictFields), the distinct values and
//     how many rows hold each, when a group has at most maxDictValues.
//
// Blocks of formats 1 and 2 have none of this: their groups are never
// skipped by it (skipIndexed is false).

// dictFields are the fields whose values a group counts; in the order of
// their index in a group's dictionary list.
var dictFields = []string{"service", "version", "level", "kind", "method", "route", "status", "cluster", "datacenter"}

// maxDictValues bounds a group's dictionary of one field: a field with more
// distinct values in the group has none (unknown), as merchant ids would.
const maxDictValues = 32

// fieldDict is one field's distinct values in a row group and their row
// counts (Counts[i] rows hold Values[i]).
type fieldDict struct {
	Field  string   `json:"f"`
	Values []string `json:"v"`
	Counts []int    `json:"n"`
}

func (d *fieldDict) count(v string) (int, bool) {
	for i, x := range d.Values {
		if x == v {
			return d.Counts[i], true
		}
	}
	return 0, false
}

// dict returns the group's dictionary of field, nil when it has none.
func (g *groupMeta) dict(field string) *fieldDict {
	for i := range g.Dicts {
		if g.Dicts[i].Field == field {
			return &g.Dicts[i]
		}
	}
	return nil
}

// skipIndexed reports whether the block's groups carry skip indexes (format 3 on).
func (m *blockMeta) skipIndexed() bool { return m.Format >= 3 }

// dictValue[i] is a log line's value of dictFields[i], spelled as a
// query's where compares it (status 0 is the empty string).
var dictValue = func() []func(*Log) string {
	out := make([]func(*Log) string, len(dictFields))
	for i, f := range dictFields {
		out[i] = firstClass[f]
		if f == "status" {
			out[i] = statusText
		}
	}
	return out
}()

// statusTexts spell the HTTP statuses without an allocation per line.
var statusTexts = func() []string {
	out := make([]string, 600)
	for i := 1; i < len(out); i++ {
		out[i] = strconv.Itoa(i)
	}
	return out
}()

// statusText is firstClass["status"] without allocating for 1..599.
func statusText(l *Log) string {
	if l.Status >= 0 && l.Status < len(statusTexts) {
		return statusTexts[l.Status]
	}
	return strconv.Itoa(l.Status)
}

// internTable shares the strings of footers kept in memory: the same few
// values recur in every group's dictionaries. Strings it stores are copies
// (never substrings of a batch body); at its bound it copies without
// keeping.
type internTable struct {
	mu sync.Mutex
	m  map[string]string
}

var dictValues = internTable{m: map[string]string{}}

func (t *internTable) intern(s string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.m[s]; ok {
		return v
	}
	c := strings.Clone(s)
	if len(t.m) < 1<<16 {
		t.m[c] = c
	}
	return c
}

// internDicts makes a decoded footer's dictionary values shared copies.
func internDicts(m *blockMeta) {
	for gi := range m.Groups {
		for di := range m.Groups[gi].Dicts {
			vs := m.Groups[gi].Dicts[di].Values
			for i := range vs {
				vs[i] = dictValues.intern(vs[i])
			}
			m.Groups[gi].Dicts[di].Field = dictValues.intern(m.Groups[gi].Dicts[di].Field)
		}
	}
}

// groupIndexer builds a log group's skip indexes row by row.
type groupIndexer struct {
	minT, maxT int64
	words      hashSet
	attrWords  hashSet
	dicts      [][]valueCount // per dictField; nil once over maxDictValues
	over       []bool
	last       []int // per field: the index of the value last counted
	messages   map[string]struct{}
}

type valueCount struct {
	v string
	n int
}

func newGroupIndexer() *groupIndexer {
	x := &groupIndexer{dicts: make([][]valueCount, len(dictFields)), over: make([]bool, len(dictFields)), last: make([]int, len(dictFields)),
		messages: map[string]struct{}{}}
	x.reset()
	return x
}

func (x *groupIndexer) reset() {
	x.minT, x.maxT = math.MaxInt64, math.MinInt64
	x.words, x.attrWords = x.words[:0], x.attrWords[:0]
	clear(x.messages)
	for i := range x.dicts {
		x.dicts[i], x.over[i], x.last[i] = x.dicts[i][:0], false, 0
	}
}

func (x *groupIndexer) row(l *Log) {
	t := l.Time.UnixNano()
	x.minT, x.maxT = min(x.minT, t), max(x.maxT, t)
	// Messages repeat within a group: each distinct one is tokenized once.
	if _, seen := x.messages[l.Message]; !seen {
		if len(x.messages) < 1024 {
			x.messages[l.Message] = struct{}{}
		}
		eachWordKey(l.Message, func(kind byte, tok string) { x.words = append(x.words, tokenHash(kind, tok)) })
	}
	for _, a := range l.Attrs {
		eachToken(a.Value, func(tok string) { x.attrWords = append(x.attrWords, tokenHash('W', tok)) })
	}
	for i := range dictFields {
		if x.over[i] {
			continue
		}
		v := dictValue[i](l)
		d := x.dicts[i]
		// Lines repeat the previous line's value often: try it first.
		if j := x.last[i]; j < len(d) && d[j].v == v {
			d[j].n++
			continue
		}
		found := false
		for j := range d {
			if d[j].v == v {
				d[j].n++
				x.last[i], found = j, true
				break
			}
		}
		if found {
			continue
		}
		if len(d) == maxDictValues {
			x.over[i], x.dicts[i] = true, d[:0]
			continue
		}
		x.dicts[i] = append(d, valueCount{v, 1})
		x.last[i] = len(d)
	}
	// Keep the hash lists short on groups of long messages.
	if len(x.words) > 1<<14 {
		compactHashes(&x.words)
	}
	if len(x.attrWords) > 1<<14 {
		compactHashes(&x.attrWords)
	}
}

func compactHashes(s *hashSet) {
	slices.Sort(*s)
	*s = slices.Compact(*s)
}

// finish fills g's indexes and readies x for the next group.
func (x *groupIndexer) finish(g *groupMeta) {
	g.MinT, g.MaxT = x.minT, x.maxT
	g.Words = x.words.saltedBloom(msgBloomBits, msgBloomProbes, g.MinT)
	g.AttrWords = x.attrWords.saltedBloom(wordBloomBits, wordBloomProbes, g.MinT)
	for i, f := range dictFields {
		if x.over[i] {
			continue
		}
		d := fieldDict{Field: f, Values: make([]string, len(x.dicts[i])), Counts: make([]int, len(x.dicts[i]))}
		for j, vc := range x.dicts[i] {
			// A line's values are substrings of its whole batch body: a
			// footer kept in memory must hold copies, never the bodies.
			d.Values[j], d.Counts[j] = dictValues.intern(vc.v), vc.n
		}
		g.Dicts = append(g.Dicts, d)
	}
	x.reset()
}

// Word filters: 8 bits per key and 5 probes, about 2% false positives; a
// false positive costs one group read.
const wordBloomBits, wordBloomProbes = 8, 5

// The message's word filter, since session 11: 12 bits per key and 8
// probes, about 0.3% false positives. A phrase usually has one word that
// tells its lines apart (the number of `fraud rule R-0007`), the rest
// being common words every like group holds, so each group holding like
// lines is a false positive at the filter's whole rate: at 2% the 261
// groups of `fraud rule R-nnnn` lines in the benchmark's 2 M lines sent
// 5–8 of a rare phrase's 15–24 block reads to blocks without it. From the blob
// store each such read is a GET (a request charge and the store's time,
// which the query waits for), so the filter is worth half as many bytes
// more (about 1.5 bytes a line). Blocks written with 8 bits read as
// before: a filter carries its probe count and its size says its bits.
const msgBloomBits, msgBloomProbes = 12, 8

// edgeBytes is how much of a word's start and end the message filter keeps.
const edgeBytes = 4

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80
}

// eachToken calls fn with each maximal run of word bytes in s.
func eachToken(s string, fn func(string)) {
	start := -1
	for i := 0; i < len(s); i++ {
		if isWordByte(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			fn(s[start:i])
			start = -1
		}
	}
	if start >= 0 {
		fn(s[start:])
	}
}

// eachWordKey calls fn with the message filter's keys of text: each token
// whole ('W') and, when it is at least edgeBytes long, its first ('P') and
// last ('S') edgeBytes. The needle files of the cold tier (needles.go) key
// lines the same way.
func eachWordKey(text string, fn func(kind byte, tok string)) {
	eachToken(text, func(tok string) {
		fn('W', tok)
		if len(tok) >= edgeBytes {
			fn('P', tok[:edgeBytes])
			fn('S', tok[len(tok)-edgeBytes:])
		}
	})
}

// tokenHash is FNV-1a of a kind byte (W whole word, P first bytes, S last
// bytes) then the token; the filters on disk depend on it.
func tokenHash(kind byte, tok string) uint64 {
	h := uint64(14695981039346656037)
	h ^= uint64(kind)
	h *= 1099511628211
	for i := 0; i < len(tok); i++ {
		h ^= uint64(tok[i])
		h *= 1099511628211
	}
	return h
}

// needleKeys are the filter keys every message (and, apart, every
// attribute value) holding needle as a substring must have. A token of the
// needle bounded by non-word bytes on both sides is a whole token of the
// text; one that runs to the needle's end (but not its start) begins a
// text token, so that token's first edgeBytes are known when it is that
// long; likewise at the start with the last bytes. A token touching both
// ends (the needle inside one word) gives nothing. Attribute filters keep
// whole tokens only. ok is false when no key constrains the text.
type needleKeys struct {
	msg, attr []uint64 // token hashes (tokenHash)
}

func newNeedleKeys(needle string) needleKeys {
	var k needleKeys
	eachNeedleKey(needle, func(kind byte, tok string) {
		h := tokenHash(kind, tok)
		k.msg = append(k.msg, h)
		if kind == 'W' {
			k.attr = append(k.attr, h)
		}
	})
	return k
}

// eachNeedleKey calls fn with the keys (as eachWordKey spells them) that
// every message holding needle as a substring has (see needleKeys).
func eachNeedleKey(needle string, fn func(kind byte, tok string)) {
	start := -1
	for i := 0; i <= len(needle); i++ {
		if i < len(needle) && isWordByte(needle[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start < 0 {
			continue
		}
		tok, atStart, atEnd := needle[start:i], start == 0, i == len(needle)
		start = -1
		switch {
		case !atStart && !atEnd:
			fn('W', tok)
		case atStart && atEnd:
		case atEnd && len(tok) >= edgeBytes:
			fn('P', tok[:edgeBytes])
		case atStart && len(tok) >= edgeBytes:
			fn('S', tok[len(tok)-edgeBytes:])
		}
	}
}

// lacksSome is true when the word filter of group g (in a block of format
// f) surely misses one of keys; false when keys is empty (nothing is
// known). Filters of format 4 are salted (saltedKey), older ones not.
func lacksSome(b bloom, keys []uint64, f int, g *groupMeta) bool {
	for _, h := range keys {
		k := keyOf(h)
		if f >= 4 {
			k = saltedKey(h, g.MinT)
		}
		if !b.has(k) {
			return true
		}
	}
	return false
}

// groupPlan is the part of a query a row group's indexes can answer: it
// rules groups out (mayMatch) and, for counts, rules them wholly in
// (allMatch). It never rules out a group holding a line the query keeps
// (TestSkipIndexNeverDropsAMatch compares it with a full scan).
type groupPlan struct {
	q          *Query
	from, to   int64 // [from, to)
	cursor     int64 // lines at or before it
	needle     needleKeys
	hasNeedle  bool
	levelRank  int
	dictWheres []Match // where conditions on dictionary fields
	otherWhere bool    // a where condition the dictionaries cannot answer
}

func newGroupPlan(q *Query) *groupPlan {
	p := &groupPlan{q: q, from: math.MinInt64, to: math.MaxInt64, cursor: math.MaxInt64}
	if !q.From.IsZero() {
		p.from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		p.to = q.To.UnixNano()
	}
	if q.Cursor != "" {
		if t, _, err := parseCursor(q.Cursor); err == nil {
			p.cursor = t
		}
	}
	if q.Contains != "" {
		p.needle, p.hasNeedle = newNeedleKeys(q.Contains), true
	}
	if q.Level != "" {
		p.levelRank = levelRank[q.Level]
	}
	for _, w := range q.Where {
		if isDictField(w.Key) {
			p.dictWheres = append(p.dictWheres, w)
		} else {
			p.otherWhere = true
		}
	}
	return p
}

func isDictField(f string) bool {
	for _, d := range dictFields {
		if d == f {
			return true
		}
	}
	return false
}

// mayMatch is false when no line of the group can match the query.
func (p *groupPlan) mayMatch(m *blockMeta, g *groupMeta) bool {
	if !m.skipIndexed() {
		return true
	}
	if g.MaxT < p.from || g.MinT >= p.to || g.MinT > p.cursor {
		return false
	}
	if p.q.Service != "" {
		if d := g.dict("service"); d != nil {
			if _, ok := d.count(p.q.Service); !ok {
				return false
			}
		}
	}
	for _, w := range p.dictWheres {
		d := g.dict(w.Key)
		if d == nil {
			continue
		}
		if _, ok := d.count(w.Value); !ok && !w.Not {
			return false
		}
		if w.Not && len(d.Values) == 1 && d.Values[0] == w.Value {
			return false
		}
	}
	if p.levelRank > 0 {
		if d := g.dict("level"); d != nil && !anyLevelAtLeast(d, p.levelRank) {
			return false
		}
	}
	if p.hasNeedle {
		msgOut := lacksSome(g.Words, p.needle.msg, m.Format, g)
		attrOut := lacksSome(g.AttrWords, p.needle.attr, m.Format, g)
		if msgOut && attrOut {
			return false
		}
	}
	return true
}

func anyLevelAtLeast(d *fieldDict, rank int) bool {
	for _, v := range d.Values {
		if levelRank[NormalizeLevel(v)] >= rank {
			return true
		}
	}
	return false
}

// anyGroup is true when some group of the block may match; a block of an
// older format always may.
func (p *groupPlan) anyGroup(m *blockMeta) bool {
	if !m.skipIndexed() {
		return true
	}
	for i := range m.Groups {
		if p.mayMatch(m, &m.Groups[i]) {
			return true
		}
	}
	return false
}

// allMatch is true when every line of the group matches the query (the
// cursor aside), known from the indexes alone.
func (p *groupPlan) allMatch(m *blockMeta, g *groupMeta) bool {
	return g.MinT >= p.from && g.MaxT < p.to && p.allMatchButTime(m, g)
}

// surelyMatching is a lower bound of the group's lines the query keeps,
// from the group's footer alone (0 when it cannot tell): the group lies
// wholly inside the query's window and at or before its cursor, and each
// condition on a dictionary field holds for a counted number of its rows,
// so at least rows − Σ(rows − count) rows meet them all (exact when every
// field but one has a single value, as a service's groups do). Retention
// is the caller's to check.
func (p *groupPlan) surelyMatching(m *blockMeta, g *groupMeta) int {
	q := p.q
	if !m.skipIndexed() || q.TraceID != "" || q.Contains != "" || q.Regex != nil || p.otherWhere || p.levelRank > 0 {
		return 0
	}
	if g.MinT < p.from || g.MaxT >= p.to || g.MaxT > p.cursor {
		return 0
	}
	short := 0 // rows that may fail some condition
	holds := func(field, v string, not bool) bool {
		d := g.dict(field)
		if d == nil {
			return false
		}
		n, _ := d.count(v)
		if not {
			n = g.Rows - n
		}
		short += g.Rows - n
		return true
	}
	if q.Service != "" && !holds("service", q.Service, false) {
		return 0
	}
	for _, w := range p.dictWheres {
		if !holds(w.Key, w.Value, w.Not) {
			return 0
		}
	}
	return max(0, g.Rows-short)
}

// allMatchButTime is allMatch with the time window left to test line by
// line.
func (p *groupPlan) allMatchButTime(m *blockMeta, g *groupMeta) bool {
	q := p.q
	if !m.skipIndexed() || q.TraceID != "" || q.Contains != "" || q.Regex != nil || p.otherWhere {
		return false
	}
	only := func(field, v string) bool {
		d := g.dict(field)
		return d != nil && len(d.Values) == 1 && d.Values[0] == v
	}
	if q.Service != "" && !only("service", q.Service) {
		return false
	}
	for _, w := range p.dictWheres {
		d := g.dict(w.Key)
		if d == nil {
			return false
		}
		if _, has := d.count(w.Value); w.Not && has || !w.Not && !only(w.Key, w.Value) {
			return false
		}
	}
	if p.levelRank > 0 {
		d := g.dict("level")
		if d == nil {
			return false
		}
		for _, v := range d.Values {
			if levelRank[NormalizeLevel(v)] < p.levelRank {
				return false
			}
		}
	}
	return true
}
