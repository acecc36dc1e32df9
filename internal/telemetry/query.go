package telemetry

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Query selects log lines. Empty fields match everything.
type Query struct {
	Service  string
	From, To time.Time // From inclusive, To exclusive; zero means open
	Level    string    // minimum level
	TraceID  string
	Where    []Match
	Contains string
	Regex    *regexp.Regexp
	Limit    int
	Cursor   string
}

// Match is a field condition: key=value, or key!=value with Not.
type Match struct {
	Key, Value string
	Not        bool
}

// Result is a page of log lines, newest first. Next, when set, fetches the
// following page; Warnings name blocks that could not be read (corrupt,
// missing) so a partial answer is never mistaken for a complete one.
type Result struct {
	Logs     []Log    `json:"logs"`
	Next     string   `json:"next,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// TraceResult is everything stored about one trace, in time order.
type TraceResult struct {
	TraceID  string   `json:"trace_id"`
	Spans    []Span   `json:"spans"`
	Logs     []Log    `json:"logs"`
	Warnings []string `json:"warnings,omitempty"`
}

const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// Field names a query can match on; anything else is an attribute.
var firstClass = map[string]func(*Log) string{
	"service": func(l *Log) string { return l.Service }, "version": func(l *Log) string { return l.Version },
	"level": func(l *Log) string { return l.Level }, "kind": func(l *Log) string { return l.Kind },
	"trace_id": func(l *Log) string { return l.TraceID }, "span_id": func(l *Log) string { return l.SpanID },
	"method": func(l *Log) string { return l.Method }, "route": func(l *Log) string { return l.Route },
	"status": func(l *Log) string {
		if l.Status == 0 {
			return ""
		}
		return strconv.Itoa(l.Status)
	},
	"caller": func(l *Log) string { return l.Caller }, "cluster": func(l *Log) string { return l.Cluster },
	"datacenter": func(l *Log) string { return l.Datacenter }, "merchant_id": func(l *Log) string { return l.MerchantID },
	"message": func(l *Log) string { return l.Message },
}

var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$`)

// ParseMatch parses key=value or key!=value.
func ParseMatch(s string) (Match, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return Match{}, fmt.Errorf("%q: want key=value or key!=value, e.g. route=/v1/pay", s)
	}
	m := Match{Key: k, Value: v}
	if strings.HasSuffix(k, "!") {
		m.Key, m.Not = strings.TrimSuffix(k, "!"), true
	}
	if !keyRE.MatchString(m.Key) {
		return Match{}, fmt.Errorf("%q: key %q must be letters, digits, _ . - and start with a letter or _", s, m.Key)
	}
	return m, nil
}

// QueryError names the query parameter that was wrong.
type QueryError struct {
	Param string
	Err   error
}

func (e *QueryError) Error() string { return e.Param + ": " + e.Err.Error() }
func (e *QueryError) Unwrap() error { return e.Err }

// ParseQuery reads a query from URL parameters: service, since (a Go
// duration such as 15m or 2h), from and to (RFC 3339 or Unix seconds),
// level, trace_id, where (repeated key=value), contains, regex, limit, cursor.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	known := map[string]bool{"service": true, "since": true, "from": true, "to": true, "level": true, "trace_id": true,
		"where": true, "contains": true, "regex": true, "limit": true, "cursor": true, "format": true}
	for k := range v {
		if !known[k] {
			return Query{}, &QueryError{k, fmt.Errorf("unknown parameter; known: service, since, from, to, level, trace_id, where, contains, regex, limit, cursor")}
		}
	}
	q := Query{Service: v.Get("service"), Contains: v.Get("contains"), Cursor: v.Get("cursor"), Limit: DefaultLimit}
	if s := v.Get("since"); s != "" {
		if v.Get("from") != "" {
			return q, &QueryError{"since", fmt.Errorf("give since or from, not both")}
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return q, &QueryError{"since", fmt.Errorf("%q is not a positive duration such as 15m or 2h", s)}
		}
		q.From = now.Add(-d)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(p.name); s != "" {
			t, err := parseTime(s)
			if err != nil {
				return q, &QueryError{p.name, err}
			}
			*p.dst = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, &QueryError{"to", fmt.Errorf("must be after from")}
	}
	if s := v.Get("level"); s != "" {
		q.Level = NormalizeLevel(s)
		if levelRank[q.Level] == 0 {
			return q, &QueryError{"level", fmt.Errorf("%q is not one of trace, debug, info, warn, error, fatal", s)}
		}
	}
	if s := v.Get("trace_id"); s != "" {
		s = strings.ToLower(s)
		if err := ValidTraceID(s); err != nil {
			return q, &QueryError{"trace_id", err}
		}
		q.TraceID = s
	}
	for i, w := range v["where"] {
		m, err := ParseMatch(w)
		if err != nil {
			return q, &QueryError{fmt.Sprintf("where[%d]", i), err}
		}
		q.Where = append(q.Where, m)
	}
	if s := v.Get("regex"); s != "" {
		if q.Contains != "" {
			return q, &QueryError{"regex", fmt.Errorf("give contains or regex, not both")}
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return q, &QueryError{"regex", err}
		}
		q.Regex = re
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, &QueryError{"limit", fmt.Errorf("%q: want a number from 1 to %d", s, MaxLimit)}
		}
		q.Limit = n
	}
	if q.Cursor != "" {
		if _, _, err := parseCursor(q.Cursor); err != nil {
			return q, &QueryError{"cursor", err}
		}
	}
	return q, nil
}

// Values is the inverse of ParseQuery, for clients.
func (q Query) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("service", q.Service)
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	set("level", q.Level)
	set("trace_id", q.TraceID)
	for _, m := range q.Where {
		op := "="
		if m.Not {
			op = "!="
		}
		v.Add("where", m.Key+op+m.Value)
	}
	set("contains", q.Contains)
	if q.Regex != nil {
		v.Set("regex", q.Regex.String())
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 && n < 1e11 {
		return time.Unix(0, int64(n*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-01-02T15:04:05Z) or Unix seconds", s)
}

// The cursor is "<unix ns>.<n>": continue with lines older than that time,
// and with lines at exactly that time after the first n of them.
func parseCursor(s string) (int64, int, error) {
	a, b, ok := strings.Cut(s, ".")
	t, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 0 {
		return 0, 0, fmt.Errorf("%q is not a cursor returned by a previous page", s)
	}
	return t, n, nil
}

// matches reports whether l passes every condition except the cursor.
func (q *Query) matches(l *Log) bool {
	t := l.Time.UnixNano()
	if !q.From.IsZero() && t < q.From.UnixNano() || !q.To.IsZero() && t >= q.To.UnixNano() {
		return false
	}
	if q.Service != "" && l.Service != q.Service || q.TraceID != "" && l.TraceID != q.TraceID {
		return false
	}
	if q.Level != "" && levelRank[NormalizeLevel(l.Level)] < levelRank[q.Level] {
		return false
	}
	for _, m := range q.Where {
		var got string
		if f := firstClass[m.Key]; f != nil {
			got = f(l)
		} else {
			got, _ = l.Attrs.Get(m.Key)
		}
		if (got == m.Value) == m.Not {
			return false
		}
	}
	if q.Contains != "" && !strings.Contains(l.Message, q.Contains) && !attrsContain(l.Attrs, q.Contains) {
		return false
	}
	if q.Regex != nil && !q.Regex.MatchString(l.Message) {
		return false
	}
	return true
}

func attrsContain(a Attrs, s string) bool {
	for _, kv := range a {
		if strings.Contains(kv.Value, s) {
			return true
		}
	}
	return false
}

// mayMatchBlock uses a block's footer to skip it without reading it.
func (q *Query) mayMatchBlock(m *blockMeta) bool {
	if m.Kind != "logs" {
		return false
	}
	if !q.From.IsZero() && m.MaxTime < q.From.UnixNano() || !q.To.IsZero() && m.MinTime >= q.To.UnixNano() {
		return false
	}
	if q.Service != "" && !m.hasService(q.Service) {
		return false
	}
	if q.TraceID != "" && !m.mayHaveTrace(q.TraceID) {
		return false
	}
	for _, w := range q.Where {
		if w.Not {
			continue
		}
		switch w.Key {
		case "trace_id":
			if !m.mayHaveTrace(w.Value) {
				return false
			}
		case "merchant_id":
			if !m.Merchant.mayContain(w.Value) {
				return false
			}
		case "service":
			if !m.hasService(w.Value) {
				return false
			}
		}
	}
	if q.Cursor != "" {
		if t, _, err := parseCursor(q.Cursor); err == nil && m.MinTime > t {
			return false
		}
	}
	return true
}

// newestFirst orders lines by time, newest first, with a fixed order for
// equal times so cursors are stable.
func newestFirst(a, b *Log) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	if a.Service != b.Service {
		return a.Service < b.Service
	}
	if a.SpanID != b.SpanID {
		return a.SpanID < b.SpanID
	}
	return a.Message < b.Message
}

// page sorts candidates, applies the cursor and cuts a page of q.Limit.
func (q *Query) page(cands []Log) Result {
	sort.SliceStable(cands, func(i, j int) bool { return newestFirst(&cands[i], &cands[j]) })
	if q.Cursor != "" {
		t, skip, _ := parseCursor(q.Cursor)
		i := 0
		for i < len(cands) && cands[i].Time.UnixNano() > t {
			i++
		}
		for n := 0; n < skip && i < len(cands) && cands[i].Time.UnixNano() == t; n++ {
			i++
		}
		cands = cands[i:]
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	res := Result{Logs: cands}
	if len(cands) > limit {
		res.Logs = cands[:limit]
		last := res.Logs[limit-1].Time.UnixNano()
		n := 0
		for i := limit - 1; i >= 0 && res.Logs[i].Time.UnixNano() == last; i-- {
			n++
		}
		if q.Cursor != "" {
			if t, skip, _ := parseCursor(q.Cursor); t == last {
				n += skip
			}
		}
		res.Next = fmt.Sprintf("%d.%d", last, n)
	}
	if res.Logs == nil {
		res.Logs = []Log{}
	}
	return res
}
