package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// The Prometheus HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/)
// over the store: the same paths, parameters, JSON envelope, error types
// and status codes, so Grafana's Prometheus data source and promtool
// work against it unchanged.

// API returns the handler of the Prometheus-compatible routes; the
// control plane mounts it for each path in APIPaths.
func (s *Store) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/query", s.query)
	mux.HandleFunc("/api/v1/query_range", s.queryRange)
	mux.HandleFunc("/api/v1/series", s.series)
	mux.HandleFunc("/api/v1/labels", s.labelNames)
	mux.HandleFunc("/api/v1/label/{name}/values", s.labelValues)
	mux.HandleFunc("/api/v1/metadata", s.metadata)
	mux.HandleFunc("/api/v1/targets", s.targetsAPI)
	mux.HandleFunc("/federate", s.federate)
	return mux
}

// APIPaths are the routes API serves, with the methods Prometheus
// accepts on each: POST on the first four carries the parameters as a
// form (long queries) and reads, never writes.
var APIPaths = []struct {
	Path string
	Post bool
}{
	{"/api/v1/query", true}, {"/api/v1/query_range", true}, {"/api/v1/series", true}, {"/api/v1/labels", true},
	{"/api/v1/label/{name}/values", false}, {"/api/v1/metadata", false}, {"/api/v1/targets", false}, {"/federate", false},
}

// Error types of the Prometheus API.
const (
	errBadData  = "bad_data"
	errExec     = "execution"
	errTimeout  = "timeout"
	errCanceled = "canceled"
	errInternal = "internal"
)

type apiError struct {
	typ string
	err error
}

func badData(format string, a ...any) *apiError {
	return &apiError{errBadData, fmt.Errorf(format, a...)}
}

func (e *apiError) status() int {
	switch e.typ {
	case errBadData:
		return http.StatusBadRequest
	case errExec:
		return http.StatusUnprocessableEntity
	case errTimeout:
		return http.StatusServiceUnavailable
	case errCanceled:
		return 499
	}
	return http.StatusInternalServerError
}

// engineError classifies an engine error as Prometheus' API does.
func engineError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc), errors.Is(err, context.Canceled):
		return &apiError{errCanceled, err}
	case errors.As(err, &eqt):
		return &apiError{errTimeout, err}
	case errors.As(err, &es):
		return &apiError{errInternal, err}
	}
	return &apiError{errExec, err}
}

type envelope struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

func respond(w http.ResponseWriter, data any, annos annotations.Annotations) {
	warn, info := annos.AsStrings("", 10, 10)
	writeEnvelope(w, http.StatusOK, envelope{Status: "success", Data: data, Warnings: warn, Infos: info})
}

func respondError(w http.ResponseWriter, e *apiError) {
	writeEnvelope(w, e.status(), envelope{Status: "error", ErrorType: e.typ, Error: e.err.Error()})
}

func writeEnvelope(w http.ResponseWriter, code int, e envelope) {
	b, err := json.Marshal(e)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(envelope{Status: "error", ErrorType: errInternal, Error: "encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// queryData is the data of a query answer.
type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
}

func (s *Store) queryOpts() promql.QueryOpts {
	return promql.NewPrometheusQueryOpts(false, 0, nil)
}

// queryContext bounds a query by the request's timeout parameter, never
// beyond the engine's own timeout.
func queryContext(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	ctx := r.Context()
	if to := r.FormValue("timeout"); to != "" {
		d, err := parseDuration(to)
		if err != nil {
			return nil, nil, badData("invalid parameter \"timeout\": %v", err)
		}
		c, cancel := context.WithTimeout(ctx, d)
		return c, cancel, nil
	}
	return ctx, func() {}, nil
}

func (s *Store) query(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, true) {
		return
	}
	ts, err := parseTimeParam(r, "time", time.Now())
	if err != nil {
		respondError(w, badData("%v", err))
		return
	}
	ctx, cancel, aerr := queryContext(r)
	if aerr != nil {
		respondError(w, aerr)
		return
	}
	defer cancel()
	q, err := s.engine.NewInstantQuery(ctx, s.db, s.queryOpts(), r.FormValue("query"), ts)
	if err != nil {
		respondError(w, badData("invalid parameter \"query\": %v", err))
		return
	}
	s.run(ctx, w, q)
}

func (s *Store) queryRange(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, true) {
		return
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		respondError(w, badData("invalid parameter \"start\": %v", err))
		return
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		respondError(w, badData("invalid parameter \"end\": %v", err))
		return
	}
	if end.Before(start) {
		respondError(w, badData("invalid parameter \"end\": end timestamp must not be before start time"))
		return
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		respondError(w, badData("invalid parameter \"step\": %v", err))
		return
	}
	if step <= 0 {
		respondError(w, badData("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"))
		return
	}
	// Prometheus' bound: at most 11 000 points per series.
	if end.Sub(start)/step > 11000 {
		respondError(w, badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
		return
	}
	ctx, cancel, aerr := queryContext(r)
	if aerr != nil {
		respondError(w, aerr)
		return
	}
	defer cancel()
	q, err := s.engine.NewRangeQuery(ctx, s.db, s.queryOpts(), r.FormValue("query"), start, end, step)
	if err != nil {
		respondError(w, badData("invalid parameter \"query\": %v", err))
		return
	}
	s.run(ctx, w, q)
}

func (s *Store) run(ctx context.Context, w http.ResponseWriter, q promql.Query) {
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		respondError(w, engineError(res.Err))
		return
	}
	respond(w, queryData{ResultType: res.Value.Type(), Result: res.Value}, res.Warnings)
}

// matchers parses match[] selectors; at least one matcher of each must
// not match the empty string (Prometheus' rule: no selecting everything).
func matchers(r *http.Request, required bool) ([][]*labels.Matcher, *apiError) {
	ms := r.Form["match[]"]
	if len(ms) == 0 && required {
		return nil, badData("no match[] parameter provided")
	}
	p := parser.NewParser(parser.Options{})
	sets, err := p.ParseMetricSelectors(ms)
	if err != nil {
		return nil, badData("invalid parameter \"match[]\": %v", err)
	}
OUTER:
	for _, set := range sets {
		for _, m := range set {
			if !m.Matches("") {
				continue OUTER
			}
		}
		return nil, badData("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

// window parses start and end (default: all time, as Prometheus).
func window(r *http.Request) (int64, int64, *apiError) {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return 0, 0, badData("%v", err)
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return 0, 0, badData("%v", err)
	}
	return start.UnixMilli(), end.UnixMilli(), nil
}

func limit(r *http.Request) (int, *apiError) {
	s := r.FormValue("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badData("invalid parameter \"limit\": %q is not a whole number >= 0", s)
	}
	return n, nil
}

func (s *Store) series(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, true) {
		return
	}
	sets, aerr := matchers(r, true)
	if aerr == nil {
		var mint, maxt int64
		if mint, maxt, aerr = window(r); aerr == nil {
			var n int
			if n, aerr = limit(r); aerr == nil {
				s.writeSeries(w, r.Context(), sets, mint, maxt, n)
				return
			}
		}
	}
	respondError(w, aerr)
}

func (s *Store) writeSeries(w http.ResponseWriter, ctx context.Context, sets [][]*labels.Matcher, mint, maxt int64, limit int) {
	q, err := s.db.Querier(mint, maxt)
	if err != nil {
		respondError(w, &apiError{errExec, err})
		return
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: limit}
	var set storage.SeriesSet
	if len(sets) == 1 {
		set = q.Select(ctx, false, hints, sets[0]...)
	} else {
		var all []storage.SeriesSet
		for _, m := range sets {
			all = append(all, q.Select(ctx, true, hints, m...))
		}
		set = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	}
	out := []labels.Labels{}
	var warnings annotations.Annotations
	for set.Next() {
		if limit > 0 && len(out) >= limit {
			warnings.Add(errors.New("results truncated due to limit"))
			break
		}
		out = append(out, set.At().Labels())
	}
	warnings.Merge(set.Warnings())
	if err := set.Err(); err != nil {
		respondError(w, &apiError{errExec, err})
		return
	}
	respond(w, out, warnings)
}

func (s *Store) labelNames(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, true) {
		return
	}
	s.labels(w, r, "")
}

func (s *Store) labelValues(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r, false) {
		return
	}
	name := r.PathValue("name")
	if !model.UTF8Validation.IsValidLabelName(name) {
		respondError(w, badData("invalid label name: %q", name))
		return
	}
	s.labels(w, r, name)
}

// labels answers label names (name == "") or the values of label name,
// optionally restricted to series matching match[].
func (s *Store) labels(w http.ResponseWriter, r *http.Request, name string) {
	sets, aerr := matchers(r, false)
	if aerr != nil {
		respondError(w, aerr)
		return
	}
	mint, maxt, aerr := window(r)
	if aerr != nil {
		respondError(w, aerr)
		return
	}
	n, aerr := limit(r)
	if aerr != nil {
		respondError(w, aerr)
		return
	}
	q, err := s.db.Querier(mint, maxt)
	if err != nil {
		respondError(w, &apiError{errExec, err})
		return
	}
	defer q.Close()
	get := func(ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		hints := &storage.LabelHints{Limit: n}
		if name == "" {
			return q.LabelNames(r.Context(), hints, ms...)
		}
		return q.LabelValues(r.Context(), name, hints, ms...)
	}
	var (
		out   []string
		annos annotations.Annotations
	)
	if len(sets) == 0 {
		out, annos, err = get()
	} else {
		seen := map[string]bool{}
		for _, ms := range sets {
			vals, a, e := get(ms...)
			annos.Merge(a)
			if e != nil {
				err = e
				break
			}
			for _, v := range vals {
				if !seen[v] {
					seen[v] = true
					out = append(out, v)
				}
			}
		}
		sortStrings(out)
	}
	if err != nil {
		respondError(w, &apiError{errExec, err})
		return
	}
	if out == nil {
		out = []string{}
	}
	if n > 0 && len(out) > n {
		out = out[:n]
		annos.Add(errors.New("results truncated due to limit"))
	}
	respond(w, out, annos)
}

// allowRead answers 405 for methods the route does not take.
func allowRead(w http.ResponseWriter, r *http.Request, post bool) bool {
	switch {
	case r.Method == http.MethodGet, r.Method == http.MethodHead, post && r.Method == http.MethodPost:
		if err := r.ParseForm(); err != nil {
			respondError(w, badData("cannot parse the form: %v", err))
			return false
		}
		return true
	}
	w.Header().Set("Allow", "GET, POST")
	respondError(w, &apiError{errBadData, fmt.Errorf("method %s not allowed here", r.Method)})
	return false
}

var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
)

// parseTimeParam, parseTime and parseDuration accept what Prometheus'
// API accepts: Unix seconds (with fractions) or RFC 3339; durations as
// seconds or Prometheus durations (5m, 1h30m).
func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid parameter %q: %w", name, err)
	}
	return t, nil
}

func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTime.Format(time.RFC3339Nano):
		return minTime, nil
	case maxTime.Format(time.RFC3339Nano):
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp (want Unix seconds or RFC 3339)", s)
}

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		d := f * float64(time.Second)
		if math.IsNaN(d) || d >= float64(math.MaxInt64) || d < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration: it overflows", s)
		}
		return time.Duration(d), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration (want seconds or e.g. 30s, 5m)", s)
}
