// Package metricsource gives the release engine per-version request
// statistics from where a cluster keeps them. The embedded gateway's live
// counters need no package (release.MetricsFunc over gateway.Snapshot);
// this one reads them from Prometheus with PromQL, for Kubernetes clusters:
// Istio's standard metrics by destination_version, or kit's own RED metrics
// by version.
package metricsource

import (
	"bytes"
	"context"
	"encoding/json"
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

// Queries are PromQL templates ({{.Service}}, {{.Namespace}}) of
// cumulative counters, so that the engine's difference of two snapshots is
// the window: Requests is an instant vector by version and status (a code
// such as "503" or a class such as "5xx"); Latency the cumulative
// histogram buckets by version and le.
type Queries struct {
	Requests string `json:"requests"`
	Latency  string `json:"latency"`
	// VersionLabel, StatusLabel name the labels of the results;
	// LatencySeconds says the le bounds are in seconds (else ms).
	VersionLabel   string `json:"versionLabel"`
	StatusLabel    string `json:"statusLabel"`
	LatencySeconds bool   `json:"latencySeconds"`
}

// Presets are the query templates for Istio's metrics and for kit's.
var Presets = map[string]Queries{
	"istio": {
		Requests:     `sum by (destination_version, response_code) (istio_requests_total{reporter="destination", destination_service_name="{{.Service}}", destination_service_namespace="{{.Namespace}}"})`,
		Latency:      `sum by (destination_version, le) (istio_request_duration_milliseconds_bucket{reporter="destination", destination_service_name="{{.Service}}", destination_service_namespace="{{.Namespace}}"})`,
		VersionLabel: "destination_version", StatusLabel: "response_code",
	},
	// kit's RED metrics carry the version as a label; the service is the
	// scrape's `service` label (the scaffold's PodMonitor sets it from
	// app.kubernetes.io/name).
	"kit": {
		Requests:     `sum by (version, status_class) (http_server_requests_total{service="{{.Service}}", namespace="{{.Namespace}}"})`,
		Latency:      `sum by (version, le) (http_server_request_duration_seconds_bucket{service="{{.Service}}", namespace="{{.Namespace}}"})`,
		VersionLabel: "version", StatusLabel: "status_class", LatencySeconds: true,
	},
}

// PrometheusOptions configure the source.
type PrometheusOptions struct {
	URL       string   // Prometheus base URL, e.g. http://prometheus:9090
	Preset    string   // "istio" (default) or "kit"
	Queries   *Queries // overrides the preset
	Namespace string
	Client    *http.Client
}

// Prometheus reads per-version statistics with PromQL instant queries.
type Prometheus struct {
	base              *url.URL
	q                 Queries
	requests, latency *template.Template
	ns                string
	client            *http.Client
}

// NewPrometheus checks the URL and the templates.
func NewPrometheus(o PrometheusOptions) (*Prometheus, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want http(s)://host:port", o.URL)
	}
	if o.Preset == "" {
		o.Preset = "istio"
	}
	q, ok := Presets[o.Preset]
	if !ok {
		return nil, fmt.Errorf("prometheus preset %q: want istio or kit", o.Preset)
	}
	if o.Queries != nil {
		q = *o.Queries
	}
	p := &Prometheus{base: u, q: q, ns: o.Namespace, client: o.Client}
	if p.ns == "" {
		p.ns = "default"
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 10 * time.Second}
	}
	for _, t := range []struct {
		name, text, label string
		dst               **template.Template
	}{{"requests", q.Requests, q.VersionLabel, &p.requests}, {"latency", q.Latency, q.VersionLabel, &p.latency}} {
		if t.label == "" {
			return nil, fmt.Errorf("prometheus queries: versionLabel is empty: name the label that carries the version")
		}
		tpl, err := template.New(t.name).Option("missingkey=error").Parse(t.text)
		if err != nil {
			return nil, fmt.Errorf("prometheus %s query template: %w", t.name, err)
		}
		if !strings.Contains(t.text, t.label) {
			return nil, fmt.Errorf("prometheus %s query %q does not mention the version label %q: group by it (sum by (%s, ...))", t.name, t.text, t.label, t.label)
		}
		*t.dst = tpl
	}
	return p, nil
}

type sample struct {
	labels map[string]string
	value  float64
}

// query runs one instant query.
func (p *Prometheus) query(ctx context.Context, tpl *template.Template, service string) ([]sample, string, error) {
	var b bytes.Buffer
	if err := tpl.Execute(&b, map[string]string{"Service": service, "Namespace": p.ns}); err != nil {
		return nil, "", err
	}
	q := b.String()
	u := p.base.JoinPath("api/v1/query")
	u.RawQuery = url.Values{"query": {q}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, q, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, q, fmt.Errorf("prometheus %s: %w", p.base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, q, fmt.Errorf("prometheus %s answered %s, not the query API's JSON: %.200s", p.base, resp.Status, body)
	}
	if r.Status != "success" {
		return nil, q, fmt.Errorf("prometheus %s: query %s: %s", p.base, q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, q, fmt.Errorf("prometheus %s: query %s gave a %s, want an instant vector", p.base, q, r.Data.ResultType)
	}
	out := make([]sample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, q, fmt.Errorf("prometheus %s: query %s: value %v: %w", p.base, q, s.Value[1], err)
		}
		out = append(out, sample{s.Metric, v})
	}
	return out, q, nil
}

// Snapshot returns the service's cumulative statistics per version.
func (p *Prometheus) Snapshot(ctx context.Context, service string) (stats.Snapshot, error) {
	reqs, _, err := p.query(ctx, p.requests, service)
	if err != nil {
		return nil, err
	}
	lat, _, err := p.query(ctx, p.latency, service)
	if err != nil {
		return nil, err
	}
	snap := stats.Snapshot{}
	for _, s := range reqs {
		v := s.labels[p.q.VersionLabel]
		if v == "" {
			continue
		}
		n := uint64(math.Round(s.value))
		class := statusClass(s.labels[p.q.StatusLabel])
		ver := snap[v]
		ver.Total.Requests += n
		if class == "5xx" || class == "failed" {
			ver.Total.Errors += n
		}
		if ver.Total.ByClass == nil {
			ver.Total.ByClass = map[string]uint64{}
		}
		ver.Total.ByClass[class] += n
		snap[v] = ver
	}
	// Cumulative buckets by version: each bucket's own count goes to the
	// stats bucket that holds its upper bound, so the histogram is as
	// coarse as the metric's buckets (quantiles within one bucket).
	type bound struct {
		le    float64
		count float64
	}
	byVersion := map[string][]bound{}
	for _, s := range lat {
		v := s.labels[p.q.VersionLabel]
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if v == "" || err != nil {
			continue
		}
		if p.q.LatencySeconds {
			le *= 1000
		}
		byVersion[v] = append(byVersion[v], bound{le, s.value})
	}
	for v, bs := range byVersion {
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		ver := snap[v]
		ver.Total.Latency = make([]uint64, stats.NumBuckets)
		prev := 0.0
		for _, b := range bs {
			n := b.count - prev
			prev = b.count
			if n <= 0 {
				continue
			}
			i := stats.NumBuckets - 1
			if !math.IsInf(b.le, 1) {
				i = stats.Bucket(b.le)
			}
			ver.Total.Latency[i] += uint64(math.Round(n))
		}
		snap[v] = ver
	}
	return snap, nil
}

// statusClass maps "503" or "5xx" to "5xx"; "0" (no answer) to "failed".
func statusClass(s string) string {
	if len(s) == 3 && strings.HasSuffix(s, "xx") {
		return s
	}
	code, err := strconv.Atoi(s)
	if err != nil {
		return "other"
	}
	return stats.StatusClass(code)
}
