// Package metricsource gives the release engine per-version request
// statistics from where a cluster keeps them. The embedded gateway's live
// counters need no package (release.MetricsFunc over gateway.Snapshot);
// this one reads them from Prometheus with PromQL, for Kubernetes clusters:
// Istio's standard metrics by destination_version, kit's own RED metrics
// by version, or the embedded gateway's exported metrics.
package metricsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/pave-platform/pave/internal/stats"
)

// Queries are PromQL templates of cumulative counters, so that the
// engine's difference of two snapshots is the window. They see
// {{.Service}} and {{.Namespace}}, already escaped for a PromQL string.
//
// Requests is an instant vector of request counts by version (and route,
// and status, when the metric has them); Errors, if set, one of error
// counts by version (and route); without it, errors are the requests whose
// status is 5xx (or 0, no answer). Latency is the cumulative histogram
// buckets by version (and route) and le.
type Queries struct {
	Requests string `json:"requests"`
	Errors   string `json:"errors,omitempty"`
	Latency  string `json:"latency"`
	// The labels of the results. Left empty in an override, they are the
	// preset's.
	VersionLabel string `json:"versionLabel,omitempty"`
	RouteLabel   string `json:"routeLabel,omitempty"`
	// StatusLabel holds a code ("503", "0" for no answer) or a class
	// ("5xx", "failed").
	StatusLabel string `json:"statusLabel,omitempty"`
	// LatencyUnit is the unit of le: "ms" or "s".
	LatencyUnit string `json:"latencyUnit,omitempty"`
	// RouteFallback names a preset whose metrics carry the route (the
	// istio preset's is "kit"): when none of these request series has
	// RouteLabel, a snapshot's per-route counts come from that preset's
	// series, read in the same query, while the versions' totals stay
	// these. "none" turns it off; left empty in an override, it is the
	// preset's.
	RouteFallback string `json:"routeFallback,omitempty"`
}

// Istio's selector: the destination proxy's report, so a request counts
// once, where it was served.
const istioSel = `reporter="destination", destination_service_name="{{.Service}}", destination_service_namespace="{{.Namespace}}"`

// kit's RED metrics carry the version as a constant label; the service and
// namespace are the labels the scrape adds (a ServiceMonitor on Service S
// sets both).
const kitSel = `service="{{.Service}}", namespace="{{.Namespace}}"`

// The presets select raw series, one per pod (no sum): the source adds
// them up itself after correcting each for counter resets (restarts.go),
// so a pod that restarts, or is replaced, does not restart the window.
var presets = map[string]Queries{
	// Istio's standard metrics. The route is request_operation, the
	// attribute Istio's telemetry API fills from its classification
	// rules (e.g. "GET /v1/orders/{id}"); where the mesh does not set
	// it, the routes come from kit's RED metrics of the same service
	// (its route templates), and without those the judges see the
	// total only.
	"istio": {
		Requests:     `istio_requests_total{` + istioSel + `}`,
		Latency:      `istio_request_duration_milliseconds_bucket{` + istioSel + `}`,
		VersionLabel: "destination_version", RouteLabel: "request_operation", StatusLabel: "response_code", LatencyUnit: "ms",
		RouteFallback: "kit",
	},
	"kit": {
		Requests:     `http_server_requests_total{` + kitSel + `}`,
		Errors:       `http_server_errors_total{` + kitSel + `}`,
		Latency:      `http_server_request_duration_seconds_bucket{` + kitSel + `}`,
		VersionLabel: "version", RouteLabel: "route", StatusLabel: "status_class", LatencyUnit: "s",
	},
	// The embedded gateway's /metrics, scraped by a Prometheus of the
	// team's: its class label already says "failed" for no answer.
	"gateway": {
		Requests:     `pave_gateway_requests_total{service="{{.Service}}"}`,
		Latency:      `pave_gateway_request_duration_seconds_bucket{service="{{.Service}}"}`,
		VersionLabel: "version", RouteLabel: "route", StatusLabel: "class", LatencyUnit: "s",
	},
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	out := make([]string, 0, len(presets))
	for n := range presets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Preset returns a preset's queries, e.g. to start an override from.
func Preset(name string) (Queries, error) {
	q, ok := presets[name]
	if !ok {
		return Queries{}, fmt.Errorf("prometheus preset %q does not exist: want one of %s", name, strings.Join(PresetNames(), ", "))
	}
	return q, nil
}

// PrometheusOptions configure the source.
type PrometheusOptions struct {
	URL       string   // Prometheus base URL, e.g. http://prometheus:9090
	Preset    string   // "istio" (default), "kit" or "gateway"
	Queries   *Queries // overrides the preset's templates
	Namespace string   // default "default"
	Client    *http.Client
}

// Prometheus reads per-version statistics with one PromQL instant query
// per snapshot.
type Prometheus struct {
	resets resets // per-series reset correction (restarts.go)
	base   *url.URL
	q      Queries
	routes *Queries           // the route fallback's queries, nil without one
	tpl    *template.Template // the three templates, combined
	ns     string
	client *http.Client
}

// queryLabel marks which template a series of the combined query came from.
const queryLabel = "pave_query"

// NewPrometheus checks the URL and the templates: each must parse, name
// only .Service and .Namespace, and group by the version label (the
// latency one by le too).
func NewPrometheus(o PrometheusOptions) (*Prometheus, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want http(s)://host:port", o.URL)
	}
	if o.Preset == "" {
		o.Preset = "istio"
	}
	q, err := Preset(o.Preset)
	if err != nil {
		return nil, err
	}
	if o.Queries != nil {
		q = override(q, *o.Queries)
	}
	p := &Prometheus{base: u, q: q, ns: o.Namespace, client: o.Client}
	if p.ns == "" {
		p.ns = "default"
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 10 * time.Second}
	}
	if q.LatencyUnit != "ms" && q.LatencyUnit != "s" {
		return nil, fmt.Errorf("prometheus queries: latencyUnit %q: want ms or s (the unit of the histogram's le)", q.LatencyUnit)
	}
	if q.VersionLabel == "" {
		return nil, errors.New("prometheus queries: versionLabel is empty: name the label that carries the version")
	}
	if q.Errors == "" && q.StatusLabel == "" {
		return nil, errors.New("prometheus queries: no errors query and no statusLabel: give an errors query, or group requests by a status label and name it")
	}
	var combined []string
	if err := checkParts(q, "", &combined); err != nil {
		return nil, err
	}
	if fb := q.RouteFallback; fb != "" && fb != "none" {
		rq, err := Preset(fb)
		if err != nil {
			return nil, fmt.Errorf("prometheus queries: routeFallback: %w (or \"none\")", err)
		}
		if rq.RouteLabel == "" {
			return nil, fmt.Errorf("prometheus queries: routeFallback %q has no route label", fb)
		}
		if err := checkParts(rq, routePart, &combined); err != nil {
			return nil, err
		}
		p.routes = &rq
	}
	p.tpl = template.Must(template.New("snapshot").Option("missingkey=error").Parse(strings.Join(combined, " or ")))
	return p, nil
}

// routePart prefixes the parts of the combined query that belong to the
// route fallback ("route-requests", …).
const routePart = "route-"

// checkParts checks q's three templates and appends each, marked with its
// part's name (after prefix), to combined.
func checkParts(q Queries, prefix string, combined *[]string) error {
	parts := []struct{ name, text string }{{"requests", q.Requests}, {"errors", q.Errors}, {"latency", q.Latency}}
	for _, t := range parts {
		if t.text == "" {
			if t.name == "errors" {
				continue
			}
			return fmt.Errorf("prometheus queries: the %s query is empty", t.name)
		}
		want := []string{q.VersionLabel}
		if t.name == "latency" {
			want = append(want, "le")
		}
		if t.name == "requests" && q.Errors == "" {
			want = append(want, q.StatusLabel)
		}
		for _, l := range want {
			// A raw selector keeps every label; an aggregation must
			// keep these.
			if aggregates(t.text) && !mentions(t.text, l) {
				return fmt.Errorf("prometheus %s query %q does not mention the label %q: group by it (sum by (%s, ...))", t.name, t.text, l, strings.Join(want, ", "))
			}
		}
		tpl, err := template.New(t.name).Option("missingkey=error").Parse(t.text)
		if err != nil {
			return fmt.Errorf("prometheus %s query template: %w", t.name, err)
		}
		if err := tpl.Execute(io.Discard, templateData{Service: "s", Namespace: "ns"}); err != nil {
			return fmt.Errorf("prometheus %s query template %q: %w (it may use {{.Service}} and {{.Namespace}})", t.name, t.text, err)
		}
		// One query for the three, so Prometheus evaluates them over the
		// same data: a scrape landing between separate queries could make
		// a window's errors or latency a scrape ahead of its requests.
		*combined = append(*combined, fmt.Sprintf(`label_replace(%s, %q, %q, "", "")`, t.text, queryLabel, prefix+t.name))
	}
	return nil
}

// override takes the templates of o and, where o leaves them empty, the
// labels and unit of the preset q.
func override(q, o Queries) Queries {
	out := Queries{Requests: o.Requests, Errors: o.Errors, Latency: o.Latency,
		VersionLabel: o.VersionLabel, RouteLabel: o.RouteLabel, StatusLabel: o.StatusLabel, LatencyUnit: o.LatencyUnit}
	if out.VersionLabel == "" {
		out.VersionLabel = q.VersionLabel
	}
	if out.RouteLabel == "" {
		out.RouteLabel = q.RouteLabel
	}
	if out.StatusLabel == "" {
		out.StatusLabel = q.StatusLabel
	}
	if out.LatencyUnit == "" {
		out.LatencyUnit = q.LatencyUnit
	}
	out.RouteFallback = o.RouteFallback
	if out.RouteFallback == "" {
		out.RouteFallback = q.RouteFallback
	}
	return out
}

// mentions reports whether a label name appears as a whole word.
func mentions(text, label string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], label)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(label)
		if (j == 0 || !isLabelChar(text[j-1])) && (end == len(text) || !isLabelChar(text[end])) {
			return true
		}
		i = j + 1
	}
}

func isLabelChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

type templateData struct{ Service, Namespace string }

// escape makes s safe inside a double-quoted PromQL string.
func escape(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

type sample struct {
	labels map[string]string
	value  float64
}

// Query returns the PromQL the source sends for a service's snapshot.
func (p *Prometheus) Query(service string) (string, error) {
	var b bytes.Buffer
	if err := p.tpl.Execute(&b, templateData{Service: escape(service), Namespace: escape(p.ns)}); err != nil {
		return "", fmt.Errorf("prometheus query for service %q: %w", service, err)
	}
	return b.String(), nil
}

// query runs one instant query; errors name the URL and the query.
func (p *Prometheus) query(ctx context.Context, q string) ([]sample, error) {
	endpoint := p.base.JoinPath("api/v1/query").String()
	form := url.Values{"query": {q}}.Encode()
	// POST keeps long queries out of URL length limits; a proxy that
	// refuses it (405) gets the GET Prometheus also serves.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: query %s: %w", p.base, q, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err == nil && resp.StatusCode == http.StatusMethodNotAllowed {
		resp.Body.Close()
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+form, nil); err == nil {
			resp, err = p.client.Do(req)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("prometheus %s unreachable: query %s: %w", p.base, q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: query %s: reading the answer: %w", p.base, q, err)
	}
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus %s: query %s: answered %s, not the query API's JSON (is the URL Prometheus's?): %.200s", p.base, q, resp.Status, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus %s: query %s: %s %s: %s", p.base, q, resp.Status, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus %s: query %s gave a %s, want an instant vector", p.base, q, r.Data.ResultType)
	}
	out := make([]sample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("prometheus %s: query %s: value %v of %v: %w", p.base, q, s.Value[1], s.Metric, err)
		}
		out = append(out, sample{s.Metric, v})
	}
	return out, nil
}

// Snapshot returns the service's cumulative statistics per version.
func (p *Prometheus) Snapshot(ctx context.Context, service string) (stats.Snapshot, error) {
	if service == "" {
		return nil, errors.New("prometheus snapshot: no service named")
	}
	q, err := p.Query(service)
	if err != nil {
		return nil, err
	}
	samples, err := p.query(ctx, q)
	if err != nil {
		return nil, err
	}
	b := builder{snap: stats.Snapshot{}, buckets: map[key][]bucket{}}
	corrected := p.resets.correct(service, samples)
	// The fallback's routes count only when the main series have none:
	// a mesh that sets the route is read alone.
	useRoutes := p.routes != nil
	for _, s := range corrected {
		if s.labels[queryLabel] == "requests" && p.q.RouteLabel != "" && s.labels[p.q.RouteLabel] != "" {
			useRoutes = false
		}
	}
	for _, s := range corrected {
		part := s.labels[queryLabel]
		if route, ok := strings.CutPrefix(part, routePart); ok {
			if useRoutes {
				b.add(*p.routes, route, true, s)
			}
			continue
		}
		b.add(p.q, part, false, s)
	}
	return b.finish(), nil
}

// key is one version, and one route of it ("" for the version's total
// when the metric has no route label). routeOnly marks counts of a route
// fallback, which go to the route and never to the version's total.
type key struct {
	version, route string
	routeOnly      bool
}

type bucket struct{ le, count float64 }

type builder struct {
	snap    stats.Snapshot
	buckets map[key][]bucket
}

// count turns a counter's value into a whole count; Prometheus sums are
// floats, and a NaN or negative one has no count to give.
func count(v float64) uint64 {
	if math.IsNaN(v) || v <= 0 {
		return 0
	}
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(v))
}

// update applies f to the version's total and, when the series has a
// route, to that route's counts.
func (b *builder) update(k key, f func(*stats.Counts)) {
	if k.routeOnly && k.route == "" {
		return
	}
	ver := b.snap[k.version]
	if !k.routeOnly {
		f(&ver.Total)
	}
	if k.route != "" {
		if ver.Routes == nil {
			ver.Routes = map[string]stats.Counts{}
		}
		c := ver.Routes[k.route]
		f(&c)
		ver.Routes[k.route] = c
	}
	b.snap[k.version] = ver
}

// add counts a sample of part (requests, errors, latency) read with q's
// labels; routeOnly counts it for its route alone.
func (b *builder) add(q Queries, part string, routeOnly bool, s sample) {
	k := key{version: s.labels[q.VersionLabel], routeOnly: routeOnly}
	if k.version == "" {
		return // not attributable to a version (e.g. a pod without the label)
	}
	if q.RouteLabel != "" {
		k.route = s.labels[q.RouteLabel]
	}
	n := count(s.value)
	switch part {
	case "requests":
		class := statusClass(s.labels[q.StatusLabel])
		b.update(k, func(c *stats.Counts) {
			c.Requests += n
			if q.Errors == "" && (class == "5xx" || class == "failed") {
				c.Errors += n
			}
			if q.StatusLabel != "" {
				if c.ByClass == nil {
					c.ByClass = map[string]uint64{}
				}
				c.ByClass[class] += n
			}
		})
	case "errors":
		b.update(k, func(c *stats.Counts) { c.Errors += n })
	case "latency":
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil || math.IsNaN(s.value) {
			return
		}
		if q.LatencyUnit == "s" {
			le *= 1000
		}
		b.buckets[k] = append(b.buckets[k], bucket{le, s.value})
	}
}

// finish turns each series' cumulative buckets into Pave's histogram:
// each Prometheus bucket's own count goes to the stats bucket that holds
// its upper bound, so the histogram is only as fine as the metric's
// buckets, and a quantile lands at or just above the Prometheus bucket
// bound it falls under (never below the truth by more than Pave's own
// 12%).
func (b *builder) finish() stats.Snapshot {
	keys := make([]key, 0, len(b.buckets))
	for k := range b.buckets {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].version < keys[j].version || keys[i].version == keys[j].version && keys[i].route < keys[j].route
	})
	for _, k := range keys {
		bs := b.buckets[k]
		// Several pods' series of one version and route: add their
		// cumulative counts bound by bound first.
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		merged := bs[:0]
		for _, bk := range bs {
			if n := len(merged); n > 0 && merged[n-1].le == bk.le {
				merged[n-1].count += bk.count
				continue
			}
			merged = append(merged, bk)
		}
		bs = merged
		hist := make([]uint64, stats.NumBuckets)
		prev := 0.0
		for _, bk := range bs {
			n := bk.count - prev
			if bk.count > prev {
				prev = bk.count
			}
			hist[latencyBucket(bk.le)] += count(n)
		}
		b.update(k, func(c *stats.Counts) {
			if len(c.Latency) != stats.NumBuckets {
				c.Latency = make([]uint64, stats.NumBuckets)
			}
			for i, n := range hist {
				c.Latency[i] += n
			}
		})
	}
	return b.snap
}

// latencyBucket is the stats bucket holding an upper bound in ms. The
// bound is shrunk by a hair first: one of Pave's own bounds exported in
// seconds (the gateway's 0.0003125) and scaled back to ms may come out a
// rounding error above it, and would land one bucket high.
func latencyBucket(le float64) int {
	if math.IsInf(le, 1) {
		return stats.NumBuckets - 1
	}
	return stats.Bucket(le * (1 - 1e-9))
}

// statusClass maps "503" or "5xx" to "5xx", "0" (no answer) or "failed"
// to "failed".
func statusClass(s string) string {
	switch s {
	case "1xx", "2xx", "3xx", "4xx", "5xx", "failed":
		return s
	}
	code, err := strconv.Atoi(s)
	if err != nil || code < 0 || code >= 600 {
		return "other"
	}
	return stats.StatusClass(code)
}
