package backtest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/alert/slo"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// features exercises what the range evaluation must reproduce: for,
// keep_firing_for, a label templated from $value (two alerts, one label
// set each), a recorded series that comes and goes (stale markers: read
// through the 5-minute lookback it would linger), and an alert reading it.
const features = `groups:
  - name: features
    rules:
      - record: job:errors:increase5m
        expr: sum by (service) (increase(http_server_requests_total{status_class="5xx"}[5m])) > 0
      - alert: Errors
        expr: job:errors:increase5m > 0
        for: 3m
        keep_firing_for: 4m
        labels:
          severity: page
          size: '{{ if gt $value 100.0 }}large{{ else }}small{{ end }}'
      - alert: ErrorsStale
        expr: absent(job:errors:increase5m{service="orders"})
        labels: {severity: ticket}
`

// forward reads a recording before the rule writing it: stepwise it sees
// the previous step's value, so the range evaluation must step aside.
const forward = `groups:
  - name: forward
    rules:
      - alert: Late
        expr: late:errors > 0
        labels: {severity: page}
      - record: late:errors
        expr: sum(rate(http_server_requests_total{status_class="5xx"}[5m]))
`

// duplicates records two series under one label set while both exist:
// the instant queries of those steps fail (and record nothing), a range
// query fails as a whole, and the replay starts again stepwise.
const duplicates = `groups:
  - name: duplicates
    rules:
      - record: merged
        expr: label_replace(http_server_requests_total, "status_class", "", "status_class", ".*")
      - alert: Merged
        expr: merged > 0
        labels: {severity: page}
`

// The range evaluation gives the rules manager's firings, firing for
// firing, for Pave's rules (one group, recordings before alerts), the
// rules Sloth v0.16.0 generates (recordings and alerts in separate groups), the plain threshold and
// the features above; a rule set it cannot evaluate exactly falls back
// to the stepwise evaluation.
func TestRangeEvaluationMatchesRulesManager(t *testing.T) {
	// Four days at 5-minute resolution put every incident on day 3 between
	// 10:00 and 16:00; the replay covers 06:00-18:00 of that day (the
	// stepwise evaluation is the slow part of this package's tests).
	gen, err := Generate(GenerateSpec{Days: 4, Services: 2, Step: Duration(5 * time.Minute), Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	gfrom, gto := gen.From.Add(78*time.Hour), gen.From.Add(90*time.Hour)
	short, sfrom, sto := parseSeries(t, `start: 2026-01-05T00:00:00Z
interval: 1m
input_series:
  - series: 'http_server_requests_total{service="orders",status_class="2xx"}'
    values: '0+600x120 72000+600x120'
  - series: 'http_server_requests_total{service="orders",status_class="5xx"}'
    values: '0x30 1x10 1+30x6 181x20 181+300x3 1081x40 _x20 1081x60 1081+5x10'
`)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Both objectives: the availability alerts read ratios whose name the
	// later latency rules record too (with slo="latency"), which
	// rangeable must tell apart.
	both, err := slo.Parse("svc00", []byte("slos: {runbook: https://runbooks.example.com/x, availability: {objective: 99.9}, latency: {objective: 99, threshold: 250ms}}"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := slo.Rules(both)
	if err != nil {
		t.Fatal(err)
	}
	if why := rangeable(loadGroups(t, write("pave-both.yaml", string(b)))); why != "" {
		t.Errorf("Pave's rules with both objectives: %s; want the range evaluation to apply", why)
	}
	cases := []struct {
		name    string
		files   []string
		series  []Series
		from    time.Time
		to      time.Time
		step    time.Duration
		ranged  bool // the range evaluation applies
		minFire int  // firings the case must produce to test anything
	}{
		{"pave", []string{paveRules(t, dir, "svc00")}, gen.Series, gfrom, gto, 5 * time.Minute, true, 3},
		{"sloth", []string{filepath.Join("testdata", "sloth-svc00.yaml")}, gen.Series, gfrom, gto, 5 * time.Minute, true, 1},
		{"threshold", []string{write("threshold.yaml", strings.ReplaceAll(thresholdRules, "[5m]", "[15m]"))}, gen.Series, gfrom, gto, 5 * time.Minute, true, 2},
		{"features", []string{write("features.yaml", features)}, short, sfrom, sto, time.Minute, true, 4},
		{"forward", []string{write("forward.yaml", forward)}, short, sfrom, sto, time.Minute, false, 1},
		{"duplicates", []string{write("duplicates.yaml", duplicates)}, short, sfrom, sto, time.Minute, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if why := rangeable(loadGroups(t, c.files...)); (why == "") != c.ranged {
				t.Fatalf("rangeable says %q; want the range evaluation to apply: %v", why, c.ranged)
			}
			run := func(stepwise bool) []Firing {
				f, err := Replay(context.Background(), Options{RuleFiles: c.files, Series: c.series, From: c.from, To: c.to, Step: c.step,
					Severities: []string{"page", "ticket"}, Prune: true, Stepwise: stepwise})
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			want, got := run(true), run(false)
			if len(want) < c.minFire {
				t.Fatalf("the rules manager fired %d times; the case needs at least %d to test anything: %+v", len(want), c.minFire, want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("range evaluation:\n%s\nrules manager:\n%s", dump(got), dump(want))
			}
		})
	}
}

func dump(fs []Firing) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.Start.Format("01-02 15:04") + " – " + f.End.Format("01-02 15:04") + " " + labels.FromMap(f.Labels).String() + "\n")
	}
	return b.String()
}

// loadGroups loads rule files as Replay loads and orders them (pruned).
func loadGroups(t *testing.T, files ...string) []*rules.Group {
	t.Helper()
	files, err := prepareRuleFiles(t.TempDir(), files, true)
	if err != nil {
		t.Fatal(err)
	}
	mgr := rules.NewManager(&rules.ManagerOptions{Context: context.Background(), Logger: slog.New(slog.DiscardHandler), NameValidationScheme: model.UTF8Validation})
	gm, errs := mgr.LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, files...)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var gs []*rules.Group
	for _, g := range gm {
		gs = append(gs, g)
	}
	sortGroups(gs)
	return gs
}
