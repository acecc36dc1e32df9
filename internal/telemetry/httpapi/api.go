// Package httpapi serves the telemetry store's query API over HTTP:
//
//	GET /api/v1/logs?service=&since=&from=&to=&level=&trace_id=&where=k=v&contains=&regex=&limit=&cursor=
//	GET /api/v1/logs/count?by=FIELD&<the filters above>
//	GET /api/v1/traces/{trace_id}
//	GET /api/v1/telemetry/stats
//	GET /api/traces/{trace_id} (Jaeger's query API shape, for Grafana)
//
// Logs come newest first; with format=ndjson each line is streamed as its
// own JSON object, followed by {"next": cursor} when there is more.
//
// It is its own package, with no dependency beyond the store, so that
// pave-telemetry (cmd/pave-telemetry) serves it without linking the
// control plane; pave up mounts the same routes (internal/server).
package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// API holds the store the routes read.
type API struct {
	Store telemetry.Store
	// Stats reports bytes per tier; nil when the backend has no such report.
	Stats func() telemetry.Stats
	Now   func() time.Time
}

// Route is one pattern (net/http ServeMux syntax) and its handler.
type Route struct {
	Pattern string
	Handler http.HandlerFunc
}

// Routes lists the query API's routes.
func (a API) Routes() []Route {
	return []Route{
		{"GET /api/v1/logs", a.logs},
		{"GET /api/v1/logs/count", a.logCount},
		{"GET /api/v1/traces/{trace_id}", a.trace},
		{"GET /api/v1/telemetry/stats", a.stats},
		// Jaeger's query API shape, so Grafana's Jaeger data source can open
		// Pave's traces (with each span's log lines as span logs).
		{"GET /api/traces/{trace_id}", a.jaegerTrace},
	}
}

// Register adds the routes to mux.
func (a API) Register(mux *http.ServeMux) {
	for _, r := range a.Routes() {
		mux.HandleFunc(r.Pattern, r.Handler)
	}
}

// apiError is the error body of Pave's JSON API (internal/server's APIError).
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, field string, err error) {
	writeJSON(w, status, apiError{Error: fieldPrefix(field) + err.Error(), Field: field})
}

func fieldPrefix(field string) string {
	if field == "" {
		return ""
	}
	return field + ": "
}

func (a API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func queryFail(w http.ResponseWriter, err error) {
	var qe *telemetry.QueryError
	if errors.As(err, &qe) {
		writeError(w, http.StatusBadRequest, qe.Param, qe.Err)
		return
	}
	writeError(w, http.StatusInternalServerError, "", err)
}

func (a API) logs(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := telemetry.ParseQuery(v, a.now())
	if err != nil {
		queryFail(w, err)
		return
	}
	res, err := a.Store.Query(r.Context(), q)
	if err != nil {
		queryFail(w, err)
		return
	}
	switch f := v.Get("format"); f {
	case "", "json":
		writeLogs(w, res)
	case "ndjson":
		w.Header().Set("Content-Type", "application/x-ndjson")
		flusher, _ := w.(http.Flusher)
		var b []byte
		for i := range res.Logs {
			if b, err = res.Logs[i].AppendJSON(b, ""); err != nil {
				return // as encoding/json's Encoder: the stream stops
			}
			b = append(b, '\n')
			if i%256 == 255 {
				if _, err := w.Write(b); err != nil {
					return
				}
				b = b[:0]
				if flusher != nil {
					flusher.Flush()
				}
			}
		}
		if _, err := w.Write(b); err != nil {
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"next": res.Next, "warnings": res.Warnings})
	default:
		writeError(w, http.StatusBadRequest, "format", errors.New("want json or ndjson, got "+f))
	}
}

// writeLogs answers a page as writeJSON would, byte for byte, with each
// line encoded by Log.AppendJSON instead of reflection (most of a page's
// CPU otherwise).
func writeLogs(w http.ResponseWriter, res telemetry.Result) {
	b := make([]byte, 0, 64+400*len(res.Logs))
	b = append(b, "{\n  \"logs\": "...)
	b, err := appendLogs(b, res.Logs)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err)
		return
	}
	if res.Next != "" {
		b = append(b, ",\n  \"next\": "...)
		b = telemetry.AppendJSONString(b, res.Next)
	}
	b = appendWarnings(b, res.Warnings)
	writeBody(w, b)
}

// writeTrace answers a trace as writeJSON would, byte for byte, with its
// lines encoded by Log.AppendJSON (its spans, fewer, by reflection).
func writeTrace(w http.ResponseWriter, res telemetry.TraceResult) {
	b := make([]byte, 0, 256+400*len(res.Logs))
	b = append(b, "{\n  \"trace_id\": "...)
	b = telemetry.AppendJSONString(b, res.TraceID)
	b = append(b, ",\n  \"spans\": "...)
	spans, err := json.MarshalIndent(res.Spans, "  ", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err)
		return
	}
	b = append(b, spans...)
	b = append(b, ",\n  \"logs\": "...)
	if b, err = appendLogs(b, res.Logs); err != nil {
		writeError(w, http.StatusInternalServerError, "", err)
		return
	}
	b = appendWarnings(b, res.Warnings)
	writeBody(w, b)
}

// appendLogs appends logs as the value of a top-level field of an
// indented answer.
func appendLogs(b []byte, logs []telemetry.Log) ([]byte, error) {
	switch {
	case logs == nil:
		return append(b, "null"...), nil
	case len(logs) == 0:
		return append(b, "[]"...), nil
	}
	b = append(b, '[')
	for i := range logs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		var err error
		if b, err = logs[i].AppendJSON(b, "    "); err != nil {
			return b, err
		}
	}
	return append(b, "\n  ]"...), nil
}

// appendWarnings appends the warnings field (omitempty) and closes the
// answer.
func appendWarnings(b []byte, warnings []string) []byte {
	if len(warnings) > 0 {
		b = append(b, ",\n  \"warnings\": ["...)
		for i, x := range warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n    "...)
			b = telemetry.AppendJSONString(b, x)
		}
		b = append(b, "\n  ]"...)
	}
	return append(b, "\n}\n"...)
}

func writeBody(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (a API) trace(w http.ResponseWriter, r *http.Request) {
	res, err := a.Store.Trace(r.Context(), r.PathValue("trace_id"))
	if err != nil {
		queryFail(w, err)
		return
	}
	if len(res.Spans) == 0 && len(res.Logs) == 0 {
		writeError(w, http.StatusNotFound, "trace_id", errors.New("no spans or logs stored for trace "+res.TraceID))
		return
	}
	writeTrace(w, res)
}

func (a API) stats(w http.ResponseWriter, _ *http.Request) {
	if a.Stats == nil {
		writeError(w, http.StatusNotImplemented, "", errors.New("this telemetry backend does not report sizes"))
		return
	}
	writeJSON(w, http.StatusOK, a.Stats())
}

type jaegerKV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type jaegerRef struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type jaegerLog struct {
	Timestamp int64      `json:"timestamp"`
	Fields    []jaegerKV `json:"fields"`
}

type jaegerSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []jaegerRef `json:"references"`
	StartTime     int64       `json:"startTime"` // µs
	Duration      int64       `json:"duration"`  // µs
	Tags          []jaegerKV  `json:"tags"`
	Logs          []jaegerLog `json:"logs"`
	ProcessID     string      `json:"processID"`
	Warnings      []string    `json:"warnings"`
}

type jaegerProcess struct {
	ServiceName string     `json:"serviceName"`
	Tags        []jaegerKV `json:"tags"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
	Warnings  []string                 `json:"warnings"`
}

func (a API) jaegerTrace(w http.ResponseWriter, r *http.Request) {
	res, err := a.Store.Trace(r.Context(), r.PathValue("trace_id"))
	if err != nil {
		queryFail(w, err)
		return
	}
	if len(res.Spans) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]any{"data": nil, "errors": []map[string]any{{"code": 404, "msg": "trace not found"}}})
		return
	}
	jt := jaegerOf(res)
	writeJSON(w, http.StatusOK, map[string]any{"data": []jaegerTrace{jt}, "total": 1, "limit": 0, "offset": 0, "errors": nil})
}

// jaegerOf converts a stored trace to Jaeger's JSON model.
func jaegerOf(res telemetry.TraceResult) jaegerTrace {
	jt := jaegerTrace{TraceID: res.TraceID, Processes: map[string]jaegerProcess{}}
	pids := map[string]string{}
	logsBySpan := map[string][]jaegerLog{}
	for _, l := range res.Logs {
		fields := []jaegerKV{{"message", "string", l.Message}, {"level", "string", l.Level}}
		if l.Route != "" {
			fields = append(fields, jaegerKV{"route", "string", l.Route}, jaegerKV{"status", "int64", l.Status}, jaegerKV{"duration_ms", "float64", l.DurationMS})
		}
		for _, kv := range l.Attrs.Sorted() {
			fields = append(fields, jaegerKV{kv.Key, "string", kv.Value})
		}
		logsBySpan[l.SpanID] = append(logsBySpan[l.SpanID], jaegerLog{Timestamp: l.Time.UnixMicro(), Fields: fields})
	}
	for _, s := range res.Spans {
		pid, ok := pids[s.Service]
		if !ok {
			pid = "p" + strconv.Itoa(len(pids)+1)
			pids[s.Service] = pid
			jt.Processes[pid] = jaegerProcess{ServiceName: s.Service, Tags: []jaegerKV{{"service.version", "string", s.Version}}}
		}
		js := jaegerSpan{TraceID: s.TraceID, SpanID: s.SpanID, OperationName: s.Name, StartTime: s.Start.UnixMicro(),
			Duration: s.End.Sub(s.Start).Microseconds(), ProcessID: pid, References: []jaegerRef{}, Tags: []jaegerKV{}, Logs: logsBySpan[s.SpanID]}
		if js.Logs == nil {
			js.Logs = []jaegerLog{}
		}
		if s.ParentID != "" {
			js.References = append(js.References, jaegerRef{"CHILD_OF", s.TraceID, s.ParentID})
		}
		if s.Kind != "" {
			js.Tags = append(js.Tags, jaegerKV{"span.kind", "string", s.Kind})
		}
		if s.Status == "error" {
			js.Tags = append(js.Tags, jaegerKV{"error", "bool", true})
		}
		if s.StatusText != "" {
			js.Tags = append(js.Tags, jaegerKV{"otel.status_description", "string", s.StatusText})
		}
		for _, kv := range s.Attrs.Sorted() {
			js.Tags = append(js.Tags, jaegerKV{kv.Key, "string", kv.Value})
		}
		jt.Spans = append(jt.Spans, js)
	}
	return jt
}
