// Package slo reads a service's service level objectives and synthetic
// probes from its .pave.yaml and turns them into Prometheus rules:
// multiwindow, multi-burn-rate alerts as in the SRE Workbook (chapter 5),
// with a minimum-traffic guard, absent() guards and probe alerts.
package slo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/scaffold"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// File is the file, at a service's root, the SLOs are read from.
const File = scaffold.RecordFile

// Sources of the request counters an SLO is computed from.
const (
	// SourceKit reads kit's http_server_requests_total and
	// http_server_request_duration_seconds, scraped from the instances.
	SourceKit = "kit"
	// SourceGateway reads the gateway's pave_gateway_requests_total and
	// pave_gateway_request_duration_seconds: what the callers saw, also
	// for services without kit.
	SourceGateway = "gateway"
)

// DefaultRunbook is Pave's generic runbook for SLO alerts, used when a
// service made with pave new declares no runbook of its own.
const DefaultRunbook = "https://github.com/pave-platform/pave/blob/main/docs/alerting-slo.md#runbook"

// DefaultMinFailures is how many failed requests the long window of a
// burn-rate alert must at least hold (at the alert's threshold) before the
// ratio counts: see minRequests.
const DefaultMinFailures = 3

// Spec is the `slos:` section of .pave.yaml.
type Spec struct {
	// Source is kit (default) or gateway.
	Source string `json:"source,omitempty"`
	// Availability: the percentage of requests that must not fail (5xx;
	// with the gateway source also refused and ejected).
	Availability *Objective `json:"availability,omitempty"`
	// Latency: the percentage of requests that must finish within Threshold.
	Latency *Objective `json:"latency,omitempty"`
	// Runbook is the URL on-call opens first; every generated alert links it.
	Runbook string `json:"runbook,omitempty"`
	// Dashboard and Requests override the links to Pave's service dashboard
	// and request viewer (failed requests of the service).
	Dashboard string `json:"dashboard,omitempty"`
	Requests  string `json:"requests,omitempty"`
	// MinFailures is the minimum-traffic guard: see minRequests.
	MinFailures int `json:"minFailures,omitempty"`
}

// Objective is one SLO over a 30-day window.
type Objective struct {
	// Objective is a percentage above 0 and below 100, e.g. 99.9.
	Objective Percent `json:"objective,omitempty"`
	// Threshold (latency only) is a duration, e.g. 250ms; it must be one of
	// the source's histogram bucket bounds (kit), or it is rounded down to
	// one (gateway).
	Threshold string `json:"threshold,omitempty"`
}

// Percent accepts 99.9 and "99.9" alike, as YAML authors write both.
type Percent float64

func (p *Percent) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%s is not a percentage like 99.9", b)
	}
	*p = Percent(f)
	return nil
}

// Probe is one entry of the `probes:` section: an HTTP check through the
// gateway of each cluster.
type Probe struct {
	Method string `json:"method,omitempty"` // default GET
	Path   string `json:"path"`
	// ExpectStatus is the status that counts as success (default 200).
	ExpectStatus int `json:"expectStatus,omitempty"`
	// Interval between checks (default 30s, 5s to 5m); Timeout of each
	// (default 5s, below Interval).
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	// Clusters limits the probe to these clusters (default: every cluster).
	Clusters []string `json:"clusters,omitempty"`
}

// Route is the probe's route label: "GET /healthz".
func (p Probe) Route() string { return p.Method + " " + p.Path }

// Duration is a time.Duration written as "30s".
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a duration like \"30s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"30s\"", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Service is what a .pave.yaml declares for alerting, defaults applied.
type Service struct {
	Name string
	// Owner is the owning team from the pave new answers ("" if unknown).
	Owner string
	// PaveServer is the control plane's URL the default links point at.
	PaveServer string
	// SLOs is nil when the service declares none.
	SLOs   *SLOs
	Probes []Probe
}

// SLOs are the parsed objectives with defaults applied.
type SLOs struct {
	Source      string
	Runbook     string
	Dashboard   string
	Requests    string
	MinFailures int
	// Availability and Latency are the objectives as fractions (0.999);
	// zero when not declared.
	Availability float64
	Latency      float64
	// LatencyBucket is the histogram bucket bound ("0.25") of the threshold,
	// LatencyThreshold the threshold as written.
	LatencyBucket    string
	LatencyThreshold time.Duration
}

// document is the part of .pave.yaml this package reads. The rest (routes)
// belongs to others and is not checked here.
type document struct {
	Template string          `json:"template"`
	SLOs     json.RawMessage `json:"slos"`
	Probes   json.RawMessage `json:"probes"`
}

// Read reads dir/.pave.yaml for service; a missing file declares nothing.
func Read(service, dir string) (Service, error) {
	path := filepath.Join(dir, File)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Service{Name: service}, nil
	}
	if err != nil {
		return Service{}, err
	}
	s, err := Parse(service, data)
	if err != nil {
		return Service{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse parses a .pave.yaml's content for service. Errors name the field
// (slos.latency.threshold, probes[1].path) and say what is wanted.
func Parse(service string, data []byte) (Service, error) {
	if msgs := validation.IsDNS1123Label(service); len(msgs) > 0 {
		return Service{}, fmt.Errorf("service name %q: %s", service, strings.Join(msgs, "; "))
	}
	var doc document
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Service{}, err
	}
	svc := Service{Name: service, PaveServer: scaffold.DefaultPaveServer}
	var answers *scaffold.Answers
	if doc.Template != "" {
		// A pave new record: its answers hold the objectives' defaults.
		rec, err := scaffold.ParseRecord(data)
		if err != nil {
			return Service{}, err
		}
		answers = &rec.Answers
		svc.Owner, svc.PaveServer = rec.Answers.Owner, rec.Answers.PaveServer
	}
	if isSet(doc.SLOs) || answers != nil {
		var spec Spec
		if isSet(doc.SLOs) {
			if err := strictJSON(doc.SLOs, &spec); err != nil {
				return Service{}, fmt.Errorf("slos: %w", err)
			}
		}
		slos, err := spec.resolve(answers)
		if err != nil {
			return Service{}, err
		}
		svc.SLOs = slos
	}
	if isSet(doc.Probes) {
		var probes []Probe
		if err := strictJSON(doc.Probes, &probes); err != nil {
			return Service{}, fmt.Errorf("probes: %w (want a list of {method, path, expectStatus, interval, timeout, clusters})", err)
		}
		for i := range probes {
			if err := probes[i].resolve(); err != nil {
				return Service{}, fmt.Errorf("probes[%d].%w", i, err)
			}
		}
		svc.Probes = probes
	}
	return svc, nil
}

func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// strictJSON decodes raw refusing unknown keys, so a typo (objetive) is an
// error rather than a silent default.
func strictJSON(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// resolve applies the defaults (the pave new answers, if any) and checks
// every field.
func (s Spec) resolve(answers *scaffold.Answers) (*SLOs, error) {
	out := &SLOs{Source: s.Source, Runbook: s.Runbook, Dashboard: s.Dashboard, Requests: s.Requests, MinFailures: s.MinFailures}
	if out.Source == "" {
		out.Source = SourceKit
	}
	if out.Source != SourceKit && out.Source != SourceGateway {
		return nil, fmt.Errorf("slos.source: %q: want kit (the service's own metrics) or gateway (what the gateway saw)", out.Source)
	}
	if out.Runbook == "" {
		if answers == nil {
			return nil, errors.New("slos.runbook: missing: give the URL of the runbook on-call opens when this service pages")
		}
		out.Runbook = DefaultRunbook
	}
	for _, l := range []struct{ field, v string }{{"runbook", out.Runbook}, {"dashboard", out.Dashboard}, {"requests", out.Requests}} {
		if l.v == "" {
			continue
		}
		if u, err := url.Parse(l.v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(l.v, "{}\"") {
			return nil, fmt.Errorf("slos.%s: %q is not an http(s) URL", l.field, l.v)
		}
	}
	if out.MinFailures == 0 {
		out.MinFailures = DefaultMinFailures
	}
	if out.MinFailures < 1 || out.MinFailures > 1000 {
		return nil, fmt.Errorf("slos.minFailures: %d: want 1 to 1000 failed requests", out.MinFailures)
	}
	avail, lat := s.Availability, s.Latency
	if answers != nil {
		// The answers were validated by scaffold.ParseRecord.
		a, _ := strconv.ParseFloat(answers.AvailabilityObjective, 64)
		l, _ := strconv.ParseFloat(answers.LatencyObjective, 64)
		if avail == nil {
			avail = &Objective{}
		}
		if avail.Objective == 0 {
			avail.Objective = Percent(a)
		}
		if lat == nil {
			lat = &Objective{}
		}
		if lat.Objective == 0 {
			lat.Objective = Percent(l)
		}
		if lat.Threshold == "" {
			lat.Threshold = answers.LatencyThreshold
		}
	}
	if avail == nil && lat == nil {
		return nil, errors.New("slos: declares neither availability nor latency: add availability: {objective: 99.9}")
	}
	if avail != nil {
		f, err := fraction("slos.availability.objective", avail.Objective)
		if err != nil {
			return nil, err
		}
		if avail.Threshold != "" {
			return nil, errors.New("slos.availability.threshold: only a latency objective has a threshold")
		}
		out.Availability = f
	}
	if lat != nil {
		f, err := fraction("slos.latency.objective", lat.Objective)
		if err != nil {
			return nil, err
		}
		out.Latency = f
		if lat.Threshold == "" {
			return nil, errors.New("slos.latency.threshold: missing: give the duration a request must finish within, e.g. 250ms")
		}
		d, err := time.ParseDuration(lat.Threshold)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("slos.latency.threshold: %q is not a positive duration like 250ms", lat.Threshold)
		}
		out.LatencyThreshold = d
		if out.LatencyBucket, err = bucketFor(out.Source, d); err != nil {
			return nil, fmt.Errorf("slos.latency.threshold: %w", err)
		}
	}
	return out, nil
}

func fraction(field string, p Percent) (float64, error) {
	f := float64(p)
	if p == 0 {
		return 0, fmt.Errorf("%s: missing: give a percentage such as 99.9", field)
	}
	if math.IsNaN(f) || f <= 0 || f >= 100 {
		return 0, fmt.Errorf("%s: %v: want a percentage above 0 and below 100, e.g. 99.9", field, f)
	}
	if f < 50 {
		return 0, fmt.Errorf("%s: %v%%: an objective below 50%% is almost surely a fraction written for a percentage (write 99.9, not 0.999)", field, f)
	}
	return f / 100, nil
}

// KitLatencyBounds are kit's request duration histogram bounds in seconds
// (kit/metrics.go).
var KitLatencyBounds = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// bucketFor returns the histogram le label the threshold reads from.
func bucketFor(source string, d time.Duration) (string, error) {
	secs := d.Seconds()
	if source == SourceGateway {
		// The gateway's bounds are a geometric series (internal/stats):
		// count the largest bound at or under the threshold as fast, so
		// the SLO is never looser than written.
		bounds := gatewayBounds()
		i, found := slices.BinarySearch(bounds, secs)
		if !found {
			i--
		}
		if i < 0 {
			return "", fmt.Errorf("%s is below the gateway's smallest latency bucket (%gs)", d, bounds[0])
		}
		return strconv.FormatFloat(bounds[i], 'f', -1, 64), nil
	}
	var names []string
	for _, b := range KitLatencyBounds {
		if time.Duration(math.Round(b*1e9)) == d {
			return strconv.FormatFloat(b, 'f', -1, 64), nil
		}
		names = append(names, time.Duration(math.Round(b*1e9)).String())
	}
	return "", fmt.Errorf("%s is not one of kit's latency histogram bounds (%s): pick the nearest", d, strings.Join(names, ", "))
}

// resolve applies a probe's defaults and checks it.
func (p *Probe) resolve() error {
	if p.Method == "" {
		p.Method = http.MethodGet
	}
	switch p.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
	default:
		return fmt.Errorf("method: %q: want GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS", p.Method)
	}
	if p.Path == "" {
		return errors.New("path: missing: give the path to request, e.g. /healthz")
	}
	if u, err := url.ParseRequestURI(p.Path); err != nil || !strings.HasPrefix(p.Path, "/") || u.Host != "" || strings.ContainsAny(p.Path, " \"{}\\") {
		return fmt.Errorf("path: %q: want an absolute path such as /healthz", p.Path)
	}
	if p.ExpectStatus == 0 {
		p.ExpectStatus = http.StatusOK
	}
	if p.ExpectStatus < 100 || p.ExpectStatus > 599 {
		return fmt.Errorf("expectStatus: %d: want an HTTP status (100-599)", p.ExpectStatus)
	}
	if p.Interval == 0 {
		p.Interval = Duration(30 * time.Second)
	}
	if p.Timeout == 0 {
		p.Timeout = Duration(min(5*time.Second, time.Duration(p.Interval)/2))
	}
	if p.Interval < Duration(5*time.Second) || p.Interval > Duration(5*time.Minute) {
		return fmt.Errorf("interval: %s: want 5s to 5m (the alert waits for a few failed checks)", time.Duration(p.Interval))
	}
	if p.Timeout <= 0 || p.Timeout >= p.Interval {
		return fmt.Errorf("timeout: %s: want above 0 and below the interval (%s)", time.Duration(p.Timeout), time.Duration(p.Interval))
	}
	for i, c := range p.Clusters {
		if msgs := validation.IsDNS1123Label(c); len(msgs) > 0 {
			return fmt.Errorf("clusters[%d]: %q is not a cluster name: %s", i, c, strings.Join(msgs, "; "))
		}
	}
	return nil
}
