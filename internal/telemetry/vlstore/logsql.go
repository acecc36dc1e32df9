package vlstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// Translating telemetry.Query into LogsQL. Every value that comes from a
// user (a service, a where value, a phrase, a regex, a field name) enters
// the query only through lit, a double-quoted LogsQL string literal, which
// LogsQL decodes like a Go string literal: no input can close the literal
// and add filters or pipes of its own (FuzzLogsQLQuotesEveryValue).

// How a record is laid out in VictoriaLogs. The first-class columns keep
// their names; attributes get the prefix "a." so no attribute can pose as
// a column; Pave's own bookkeeping fields start with "pave_".
const (
	fieldType  = "pave_type"  // "log" or "span"; a stream field
	fieldID    = "pave_id"    // unique per record: batch id + index
	fieldBatch = "pave_batch" // the Append call, for the acknowledgement check
	fieldRank  = "pave_rank"  // the level's rank, 1 (TRACE) … 6 (FATAL), 0 unknown
	fieldNoMsg = "pave_nomsg" // "1" when the message is empty (VictoriaLogs fills _msg then)
	attrPrefix = "a."
)

// lit quotes s as a LogsQL string literal.
func lit(s string) string { return strconv.Quote(s) }

// column maps a query key onto the stored field: a first-class column, or
// an attribute.
func column(key string) string {
	switch key {
	case "message":
		return "_msg"
	case "service", "version", "level", "kind", "trace_id", "span_id", "method", "route", "status",
		"caller", "cluster", "datacenter", "merchant_id":
		return key
	}
	return attrPrefix + key
}

// levelRank mirrors the embedded store's order of levels.
var levelRank = map[string]int{"TRACE": 1, "DEBUG": 2, "INFO": 3, "WARN": 4, "ERROR": 5, "FATAL": 6}

func rankOf(level string) int { return levelRank[telemetry.NormalizeLevel(level)] }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// logFilter is the LogsQL filter for q's conditions, the cursor aside.
func logFilter(q *telemetry.Query) string {
	parts := []string{`{` + fieldType + `="log"}`}
	switch {
	case !q.From.IsZero() && !q.To.IsZero():
		parts = append(parts, "_time:["+ts(q.From)+", "+ts(q.To)+")")
	case !q.From.IsZero():
		parts = append(parts, "_time:>="+ts(q.From))
	case !q.To.IsZero():
		parts = append(parts, "_time:<"+ts(q.To))
	}
	if q.Service != "" {
		parts = append(parts, "service:="+lit(q.Service))
	}
	if q.TraceID != "" {
		parts = append(parts, "trace_id:="+lit(q.TraceID))
	}
	if q.Level != "" {
		parts = append(parts, fmt.Sprintf("%s:>=%d", fieldRank, levelRank[q.Level]))
	}
	for _, m := range q.Where {
		f := exact(m.Key, m.Value)
		if m.Not {
			f = "NOT " + f
		}
		parts = append(parts, f)
	}
	if q.Contains != "" {
		// The message, when there is one, or any attribute's value.
		parts = append(parts, "("+lit(fieldNoMsg)+`:="" AND _msg:*`+lit(q.Contains)+"* OR "+
			lit(attrPrefix)+"*:*"+lit(q.Contains)+"*)")
	}
	if q.Regex != nil {
		f := lit(fieldNoMsg) + `:="" AND _msg:~` + lit(q.Regex.String())
		if q.Regex.MatchString("") {
			f += " OR " + lit(fieldNoMsg) + `:="1"`
		}
		parts = append(parts, "("+f+")")
	}
	return strings.Join(parts, " AND ")
}

// exact is key=value as the embedded store compares it: the value as
// stored, "" matching a line without the field.
func exact(key, value string) string {
	col := column(key)
	if col == "_msg" {
		if value == "" {
			return lit(fieldNoMsg) + `:="1"`
		}
		return "(" + lit(fieldNoMsg) + `:="" AND _msg:=` + lit(value) + ")"
	}
	return lit(col) + ":=" + lit(value)
}

// logsQuery is the LogsQL for a page: q's filter, the lines at or before
// the cursor's time, newest first (ties in a fixed order, pave_id last so
// the order is total), the cursor's skip, and one line more than the page
// to tell whether another follows.
func logsQuery(q *telemetry.Query, cursorT int64, skip, limit int) string {
	f := logFilter(q)
	if cursorT >= 0 {
		f += " AND _time:<=" + ts(time.Unix(0, cursorT))
	}
	s := f + " | sort by (_time desc, service, span_id, _msg, " + fieldID + ")"
	if skip > 0 {
		s += fmt.Sprintf(" | offset %d", skip)
	}
	return s + fmt.Sprintf(" | limit %d", limit+1)
}

// countQuery counts q's lines by the value of field by.
func countQuery(q *telemetry.Query, by string) string {
	by = lit(column(by))
	if by == `"_msg"` {
		by += ", " + fieldNoMsg // an empty message is stored as VictoriaLogs' default one
	}
	return logFilter(q) + " | stats by (" + by + ") count() as pave_n"
}

// traceQuery is every log line and span of a trace: one query.
func traceQuery(traceID string) string {
	return "trace_id:=" + lit(traceID) + " | sort by (_time, " + fieldID + ")"
}

// ackQuery counts, per batch, the distinct records of the given batches
// (an insert retried on another node, or re-routed by vlinsert, may store
// some twice; that must neither hide a missing one nor fail the batch).
func ackQuery(batches []string, from, to time.Time) string {
	ids := make([]string, len(batches))
	for i, b := range batches {
		ids[i] = lit(b)
	}
	return "_time:[" + ts(from) + ", " + ts(to) + "] AND " + fieldBatch + ":in(" + strings.Join(ids, ",") + ")" +
		" | stats by (" + fieldBatch + ") count_uniq(" + fieldID + ") as pave_n"
}
