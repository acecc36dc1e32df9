package vlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// Query returns a page of matching lines, newest first, with the embedded
// store's cursors: "<unix ns>.<n>", the lines older than that time and
// those at that very time after the first n.
func (s *Store) Query(ctx context.Context, q telemetry.Query) (telemetry.Result, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = telemetry.DefaultLimit
	}
	var cursorT int64 = -1
	skip := 0
	if q.Cursor != "" {
		t, n, err := parseCursor(q.Cursor)
		if err != nil {
			return telemetry.Result{}, &telemetry.QueryError{Param: "cursor", Err: err}
		}
		cursorT, skip = t, n
	}
	var logs []telemetry.Log
	err := s.selectRows(ctx, logsQuery(&q, cursorT, skip, limit), false, func(row map[string]string) error {
		l, err := decodeLog(row)
		if err != nil {
			return err
		}
		logs = append(logs, l)
		return nil
	})
	if err != nil {
		return telemetry.Result{}, fmt.Errorf("querying VictoriaLogs: %w", err)
	}
	res := telemetry.Result{Logs: logs}
	if len(logs) > limit {
		res.Logs = logs[:limit]
		last := res.Logs[limit-1].Time.UnixNano()
		n := 0
		for i := limit - 1; i >= 0 && res.Logs[i].Time.UnixNano() == last; i-- {
			n++
		}
		if cursorT == last {
			n += skip
		}
		res.Next = fmt.Sprintf("%d.%d", last, n)
	}
	if res.Logs == nil {
		res.Logs = []telemetry.Log{}
	}
	// VictoriaLogs orders lines sharing a time by its natural order;
	// show a page in the embedded store's (the page holds the same lines).
	slices.SortStableFunc(res.Logs, func(a, b telemetry.Log) int {
		return cmp.Or(b.Time.Compare(a.Time), strings.Compare(a.Service, b.Service),
			strings.Compare(a.SpanID, b.SpanID), strings.Compare(a.Message, b.Message))
	})
	return res, nil
}

func parseCursor(s string) (int64, int, error) {
	a, b, ok := strings.Cut(s, ".")
	t, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 0 || t < 0 {
		return 0, 0, fmt.Errorf("%q is not a cursor returned by a previous page", s)
	}
	return t, n, nil
}

// Trace returns every span and line of a trace, oldest first: one query.
func (s *Store) Trace(ctx context.Context, traceID string) (telemetry.TraceResult, error) {
	traceID = strings.ToLower(traceID)
	if err := telemetry.ValidTraceID(traceID); err != nil {
		return telemetry.TraceResult{}, &telemetry.QueryError{Param: "trace_id", Err: err}
	}
	res := telemetry.TraceResult{TraceID: traceID, Spans: []telemetry.Span{}, Logs: []telemetry.Log{}}
	err := s.selectRows(ctx, traceQuery(traceID), false, func(row map[string]string) error {
		if row[fieldType] == "span" {
			sp, err := decodeSpan(row)
			res.Spans = append(res.Spans, sp)
			return err
		}
		l, err := decodeLog(row)
		res.Logs = append(res.Logs, l)
		return err
	})
	if err != nil {
		return telemetry.TraceResult{}, fmt.Errorf("querying VictoriaLogs: %w", err)
	}
	return res, nil
}

// Count counts the lines matching q (its limit aside) by the value of a
// column or attribute, most frequent first; lines without it under "".
func (s *Store) Count(ctx context.Context, q telemetry.Query, by string) (telemetry.CountResult, error) {
	if _, err := telemetry.ParseMatch(by + "=x"); err != nil || strings.HasSuffix(by, "!") {
		return telemetry.CountResult{}, &telemetry.QueryError{Param: "by", Err: fmt.Errorf("%q: want a field name such as status or route", by)}
	}
	if q.Cursor != "" {
		return telemetry.CountResult{}, &telemetry.QueryError{Param: "cursor", Err: fmt.Errorf("a count takes no cursor")}
	}
	col := column(by)
	counts := map[string]int{}
	err := s.selectRows(ctx, countQuery(&q, by), false, func(row map[string]string) error {
		n, err := strconv.Atoi(row["pave_n"])
		if err != nil {
			return fmt.Errorf("count %q: %w", row["pave_n"], err)
		}
		v := row[col]
		if col == "_msg" && row[fieldNoMsg] == "1" {
			v = ""
		}
		counts[v] += n
		return nil
	})
	if err != nil {
		return telemetry.CountResult{}, fmt.Errorf("querying VictoriaLogs: %w", err)
	}
	res := telemetry.CountResult{By: by, Counts: make([]telemetry.ValueCount, 0, len(counts))}
	for v, n := range counts {
		res.Counts = append(res.Counts, telemetry.ValueCount{Value: v, Count: n})
		res.Total += n
	}
	slices.SortFunc(res.Counts, func(a, b telemetry.ValueCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Value, b.Value))
	})
	return res, nil
}

// decodeRow reads one line of VictoriaLogs' answer: a JSON object whose
// values are strings.
func decodeRow(b []byte) (map[string]string, error) {
	var row map[string]string
	if err := json.Unmarshal(b, &row); err != nil {
		return nil, err
	}
	return row, nil
}

func parseTime(row map[string]string, key string) (time.Time, error) {
	s := row[key]
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("record %s: field %s: %w", row[fieldID], key, err)
	}
	return t.UTC(), nil
}

func message(row map[string]string) string {
	if row[fieldNoMsg] == "1" {
		return ""
	}
	return row["_msg"]
}

func attrsOf(row map[string]string) telemetry.Attrs {
	var a telemetry.Attrs
	for k, v := range row {
		if name, ok := strings.CutPrefix(k, attrPrefix); ok {
			a = append(a, telemetry.Attr{Key: name, Value: v})
		}
	}
	slices.SortFunc(a, func(x, y telemetry.Attr) int { return strings.Compare(x.Key, y.Key) })
	return a
}

func decodeLog(row map[string]string) (telemetry.Log, error) {
	t, err := parseTime(row, "_time")
	if err != nil {
		return telemetry.Log{}, err
	}
	l := telemetry.Log{Time: t, Service: row["service"], Version: row["version"], Level: row["level"], Message: message(row),
		Kind: row["kind"], TraceID: row["trace_id"], SpanID: row["span_id"], Method: row["method"], Route: row["route"],
		Caller: row["caller"], Cluster: row["cluster"], Datacenter: row["datacenter"], MerchantID: row["merchant_id"], Attrs: attrsOf(row)}
	if v := row["status"]; v != "" {
		l.Status, _ = strconv.Atoi(v)
	}
	if v := row["duration_ms"]; v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
			l.DurationMS = f
		}
	}
	if v := row["bytes"]; v != "" {
		l.Bytes, _ = strconv.ParseInt(v, 10, 64)
	}
	return l, nil
}

func decodeSpan(row map[string]string) (telemetry.Span, error) {
	start, err := parseTime(row, "_time")
	if err != nil {
		return telemetry.Span{}, err
	}
	end, err := parseTime(row, "end")
	if err != nil {
		return telemetry.Span{}, err
	}
	return telemetry.Span{TraceID: row["trace_id"], SpanID: row["span_id"], ParentID: row["parent_id"], Name: message(row),
		Service: row["service"], Version: row["version"], Kind: row["kind"], Start: start, End: end,
		Status: row["status"], StatusText: row["status_message"], Attrs: attrsOf(row)}, nil
}
