package slo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/scaffold"
)

func TestParseDefaultsFromAnswers(t *testing.T) {
	svc, err := Parse("orders", []byte(`template: service
templateVersion: 1
answers:
  name: orders
  owner: payments
  availabilityObjective: "99.5"
  latencyThreshold: 500ms
`))
	if err != nil {
		t.Fatal(err)
	}
	s := svc.SLOs
	if s == nil {
		t.Fatal("a pave new record declares SLOs through its answers; got none")
	}
	if s.Source != SourceKit || s.Availability != 0.995 || s.Latency != 0.99 || s.LatencyBucket != "0.5" || s.LatencyThreshold != 500*time.Millisecond {
		t.Errorf("SLOs = %+v; want kit, 0.995, 0.99 (default), bucket 0.5", s)
	}
	if s.Runbook != DefaultRunbook || s.MinFailures != DefaultMinFailures || svc.Owner != "payments" {
		t.Errorf("runbook %q, minFailures %d, owner %q: want the defaults and the answers' owner", s.Runbook, s.MinFailures, svc.Owner)
	}
}

func TestParseOverridesAndGatewaySource(t *testing.T) {
	svc, err := Parse("billing", []byte(`routes: ["GET /v1/bills/{id}"]
slos:
  source: gateway
  availability: {objective: 99.95}
  latency: {objective: "99", threshold: 300ms}
  runbook: https://wiki.example.com/billing
  minFailures: 5
probes:
  - path: /healthz
  - method: HEAD
    path: /ready
    expectStatus: 204
    interval: 10s
    timeout: 2s
    clusters: [dc1]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := svc.SLOs
	if s.Source != SourceGateway || s.Availability != 0.9995 || s.Latency != 0.99 || s.MinFailures != 5 {
		t.Errorf("SLOs = %+v", s)
	}
	// 300ms is not a gateway bound: the largest bound under it is used.
	if s.LatencyBucket == "" || s.LatencyBucket >= "0.3" {
		t.Errorf("gateway bucket for 300ms = %q; want the largest bound under 0.3", s.LatencyBucket)
	}
	if len(svc.Probes) != 2 || svc.Probes[0].Route() != "GET /healthz" || svc.Probes[0].ExpectStatus != 200 ||
		time.Duration(svc.Probes[0].Interval) != 30*time.Second || time.Duration(svc.Probes[0].Timeout) != 5*time.Second {
		t.Errorf("probes[0] = %+v; want GET /healthz, 200, every 30s, 5s timeout", svc.Probes[0])
	}
	if p := svc.Probes[1]; p.Route() != "HEAD /ready" || p.ExpectStatus != 204 || time.Duration(p.Timeout) != 2*time.Second || p.Clusters[0] != "dc1" {
		t.Errorf("probes[1] = %+v", p)
	}
	b, err := Rules(svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`pave_gateway_requests_total{service="billing",version!~"cluster:.*",class=~"5xx|failed|ejected"}`,
		"runbook_url: https://wiki.example.com/billing", `route="HEAD /ready"`, "minimum traffic: 695 requests in 1h"} { // 695 = ceil(5 / (14.4 × 0.0005))
		if !strings.Contains(string(b), want) {
			t.Errorf("rules lack %q", want)
		}
	}
}

func TestNothingDeclaredMeansNoRules(t *testing.T) {
	dir := t.TempDir()
	if b, err := RuleFile("orders", dir); b != nil || err != nil {
		t.Errorf("no .pave.yaml: got %d bytes, %v; want nil, nil", len(b), err)
	}
	if err := os.WriteFile(filepath.Join(dir, File), []byte("routes: [\"GET /x\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := RuleFile("orders", dir); b != nil || err != nil {
		t.Errorf("routes only: got %d bytes, %v; want nil, nil", len(b), err)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"slos: {availability: {objective: 99.9}}", "slos.runbook: missing"},
		{"slos: {runbook: https://r.example.com, availability: {objetive: 99.9}}", `unknown field "objetive"`},
		{"slos: {runbook: https://r.example.com, availability: {objective: 0.999}}", "slos.availability.objective: 0.999%: an objective below 50%"},
		{"slos: {runbook: https://r.example.com, availability: {objective: 100}}", "slos.availability.objective: 100: want a percentage above 0 and below 100"},
		{"slos: {runbook: https://r.example.com, availability: {objective: high}}", "is not a percentage like 99.9"},
		{"slos: {runbook: https://r.example.com, latency: {objective: 99, threshold: 300ms}}", "slos.latency.threshold: 300ms is not one of kit's latency histogram bounds"},
		{"slos: {runbook: https://r.example.com, latency: {objective: 99}}", "slos.latency.threshold: missing"},
		{"slos: {runbook: https://r.example.com, source: istio, availability: {objective: 99}}", `slos.source: "istio"`},
		{"slos: {runbook: 'file:///etc/passwd', availability: {objective: 99}}", "slos.runbook: \"file:///etc/passwd\" is not an http(s) URL"},
		{"slos: {runbook: https://r.example.com}", "declares neither availability nor latency"},
		{"slos: {runbook: https://r.example.com, availability: {objective: 99}, minFailures: -1}", "slos.minFailures: -1"},
		{"probes: [{method: GET}]", "probes[0].path: missing"},
		{"probes: [{path: healthz}]", `probes[0].path: "healthz": want an absolute path`},
		{"probes: [{path: /h, expectStatus: 999}]", "probes[0].expectStatus: 999"},
		{"probes: [{path: /h, interval: 1s}]", "probes[0].interval: 1s: want 5s to 5m"},
		{"probes: [{path: /h, interval: 10s, timeout: 10s}]", "probes[0].timeout: 10s: want above 0 and below the interval (10s)"},
		{"probes: [{path: /h, interval: soon}]", `"soon" is not a duration`},
		{"probes: [{path: /h, method: FETCH}]", `probes[0].method: "FETCH"`},
		{"probes: {path: /h}", "probes: cannot unmarshal object"},
		{"slos: [1", "yaml"},
	} {
		_, err := Parse("orders", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant an error containing %q", c.doc, err, c.want)
		}
	}
}

func TestReadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, File), []byte("probes: [{}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := RuleFile("orders", dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, File)+": probes[0].path") {
		t.Errorf("got %v; want the file's path and the field", err)
	}
}

// FuzzParse: any input either errors or yields rules Prometheus' parser
// accepts (Rules checks them with rulefmt itself).
func FuzzParse(f *testing.F) {
	f.Add([]byte(ordersRecord))
	f.Add([]byte("slos: {runbook: https://r.example.com, source: gateway, availability: {objective: 99.9}, latency: {objective: 99, threshold: 1s}}\nprobes: [{path: /h}]"))
	f.Add([]byte("probes: [{path: \"/a\\\"b\"}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		svc, err := Parse("orders", data)
		if err != nil {
			return
		}
		if _, err := Rules(svc); err != nil {
			t.Fatalf("parsed input yields bad rules: %v\n%s", err, data)
		}
	})
}

// pave upgrade rewrites .pave.yaml from scaffold.Record: the sections this
// package reads must survive that round trip.
func TestRecordKeepsSLOsAndProbes(t *testing.T) {
	rec, err := scaffold.ParseRecord([]byte(ordersRecord))
	if err != nil {
		t.Fatal(err)
	}
	out, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := Parse("orders", []byte(ordersRecord))
	after, err := Parse("orders", out)
	if err != nil {
		t.Fatal(err)
	}
	if after.SLOs == nil || after.SLOs.Runbook != before.SLOs.Runbook || len(after.Probes) != 1 || after.Probes[0].Interval != before.Probes[0].Interval {
		t.Errorf("after a record round trip: %+v %+v; want the runbook and the probe kept\n%s", after.SLOs, after.Probes, out)
	}
}
