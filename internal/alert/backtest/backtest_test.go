package backtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/alert/slo"
	"github.com/prometheus/prometheus/promql/parser"
)

// paveRules writes the rules Pave generates for service with a 99.9%
// availability SLO.
func paveRules(t testing.TB, dir, service string) string {
	t.Helper()
	svc, err := slo.Parse(service, []byte("slos: {runbook: https://runbooks.example.com/x, availability: {objective: 99.9}}"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := slo.Rules(svc)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, service+".yaml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

const thresholdRules = `groups:
  - name: threshold
    rules:
      - alert: ErrorRatioHigh
        expr: |
          sum by (service) (rate(http_server_requests_total{status_class="5xx"}[5m]))
          /
          sum by (service) (rate(http_server_requests_total[5m])) > 0.01
        for: 5m
        labels: {severity: page}
`

// ParseSeriesFile with the promql parser's expanding notation.
func parseSeries(t *testing.T, doc string) ([]Series, time.Time, time.Time) {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	s, from, to, err := ParseSeriesFile([]byte(doc), SeriesDescParser(p))
	if err != nil {
		t.Fatal(err)
	}
	return s, from, to
}

// Eight hours of 600 requests a minute; a total failure for 5 minutes at
// 7h; at 2h two failed requests 4 minutes apart while traffic is 1 a minute (the
// night). Pave's rules page once, at the first evaluation of the burn; the
// plain threshold (ratio > 1% for 5m) pages late and on the night error.
func TestReplayScoresPaveAgainstThreshold(t *testing.T) {
	series, from, to := parseSeries(t, `start: 2026-01-05T00:00:00Z
interval: 1m
input_series:
  - series: 'http_server_requests_total{service="orders",status_class="2xx"}'
    values: '0+1x180 180+600x240 144180x5 144180+600x55'
  - series: 'http_server_requests_total{service="orders",status_class="5xx"}'
    values: '0x120 1x3 2x296 2+600x5 3002x55'
`)
	base := from
	incidents := []Incident{
		{Service: "orders", Kind: "night", Expect: ExpectSilent, Start: base.Add(2 * time.Hour), End: base.Add(2*time.Hour + 5*time.Minute)},
		{Service: "orders", Kind: KindFastBurn, Expect: ExpectPage, Start: base.Add(421 * time.Minute), End: base.Add(426 * time.Minute), Budget: 0.1},
	}
	dir := t.TempDir()
	thr := filepath.Join(dir, "threshold.yaml")
	if err := os.WriteFile(thr, []byte(thresholdRules), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, files ...string) Score {
		f, err := Replay(context.Background(), Options{RuleFiles: files, Series: series, From: from, To: to, Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		return Evaluate(name, f, incidents, from, to, time.Minute)
	}
	pave := run("pave", paveRules(t, dir, "orders"))
	if pave.Recall != 1 || pave.Precision != 1 || pave.FalsePages != 0 || pave.Pages != 1 {
		t.Errorf("pave: %+v; want one page, for the burn", pave)
	}
	if d := time.Duration(pave.MedianDetection); d > 2*time.Minute {
		t.Errorf("pave detected the fast burn after %s; want within 2m (Workbook: 52s + one evaluation)", d)
	}
	if pave.BudgetBeforeDetection <= 0 || pave.BudgetBeforeDetection > 0.05 {
		t.Errorf("pave burnt %v of the budget before detection; want a small share of the incident's 0.1", pave.BudgetBeforeDetection)
	}
	thrs := run("threshold", thr)
	if thrs.FalsePages != 1 || thrs.Precision != 0.5 || thrs.Recall != 1 {
		t.Errorf("threshold: %+v; want a false page at night and the burn", thrs)
	}
	if d := time.Duration(thrs.MedianDetection); d < 5*time.Minute {
		t.Errorf("threshold detected after %s; its for: 5m makes that impossible", d)
	}
}

func TestReplayRefusesBadRules(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Replay(context.Background(), Options{RuleFiles: []string{f}, From: time.Unix(0, 0), To: time.Unix(600, 0)})
	if err == nil || !strings.Contains(err.Error(), f) {
		t.Errorf("got %v; want an error naming %s", err, f)
	}
}

// The generator labels what must page: fast and slow burns burn well over
// 2% of the monthly budget, a blip far less; the outage and the stopped
// series are there once each.
func TestGenerateLabelsIncidents(t *testing.T) {
	g, err := Generate(GenerateSpec{Days: 10, Services: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, in := range g.Incidents {
		count[in.Kind]++
		switch in.Kind {
		case KindFastBurn, KindSlowBurn:
			if in.Expect != ExpectPage || in.Budget < 0.02 {
				t.Errorf("%s of %s burns %v of the budget, expect %s; want ≥ 0.02 and page", in.Kind, in.Service, in.Budget, in.Expect)
			}
		case KindBlip, KindNight:
			if in.Expect != ExpectSilent || in.Budget >= 0.02 {
				t.Errorf("%s of %s burns %v, expect %s; want < 0.02 and silent", in.Kind, in.Service, in.Budget, in.Expect)
			}
		}
	}
	want := map[string]int{KindFastBurn: 3, KindSlowBurn: 3, KindBlip: 9, KindNight: 30, KindOutage: 1, KindStopped: 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d %s incidents; want %d", count[k], k, n)
		}
	}
	if len(g.Series) != 6 || len(g.Series[0].Samples) != 10*1440 || len(g.Series[2].Samples) != 10*1440-180 {
		t.Errorf("series: %d, samples %d and %d; want 6 series, 14400 samples, 180 fewer for the stopped one", len(g.Series), len(g.Series[0].Samples), len(g.Series[2].Samples))
	}
	if _, err := Generate(GenerateSpec{Days: 2}); err == nil {
		t.Error("2 days: want an error")
	}
}

// A rule file in Sloth's layout, the alert's group before its recordings'
// group: the replay evaluates recording-only groups first, so the alert
// fires at the evaluation where the recorded value crosses, not one step
// later; and a ticket counts only when Severities asks for it.
func TestReplayRecordingsFirstAndSeverities(t *testing.T) {
	series, from, to := parseSeries(t, `start: 2026-01-05T00:00:00Z
interval: 1m
input_series:
  - series: 'errors_total{service="orders"}'
    values: '0x10 1x10'
`)
	f := filepath.Join(t.TempDir(), "rules.yaml")
	rules := "groups:\n  - name: a-alerts\n    rules:\n      - alert: Errors\n        expr: rec:errors > 0\n        labels: {severity: ticket}\n" +
		"  - name: b-recordings\n    rules:\n      - record: rec:errors\n        expr: max(errors_total)\n"
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	pages, err := Replay(context.Background(), Options{RuleFiles: []string{f}, Series: series, From: from, To: to, Prune: true})
	if err != nil || len(pages) != 0 {
		t.Fatalf("pages only: %v, %v; want no firing (the alert is a ticket)", pages, err)
	}
	all, err := Replay(context.Background(), Options{RuleFiles: []string{f}, Series: series, From: from, To: to, Prune: true, Severities: []string{"page", "ticket"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || !all[0].Start.Equal(from.Add(11*time.Minute)) || all[0].Labels["severity"] != "ticket" {
		t.Fatalf("got %+v; want one ticket firing from %s, the first sample at 1", all, from.Add(11*time.Minute))
	}
}
