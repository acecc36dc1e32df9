package slo

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"
)

// promtool finds Prometheus' promtool: on PATH (Debian's prometheus
// package) or in the tool cache scripts/deps.sh fills.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "pave-tools", "bin", "promtool")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("promtool not found: install the Debian package prometheus (scripts/deps.sh does) or put promtool on PATH")
	return ""
}

const ordersRecord = `template: service
templateVersion: 1
answers:
  name: orders
  owner: payments
slos:
  runbook: https://runbooks.example.com/orders
probes:
  - path: /healthz
    interval: 15s
`

// ordersRules writes the generated rule file of the orders service into a
// temporary directory and returns the directory and the parsed rules.
func ordersRules(t *testing.T) (string, []rulefmt.Rule) {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, File), []byte(ordersRecord), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := RuleFile("orders", src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var rg rulefmt.RuleGroups
	if err := yaml.Unmarshal(b, &rg); err != nil {
		t.Fatal(err)
	}
	return dir, rg.Groups[0].Rules
}

func TestRuleFilePassesPromtoolCheck(t *testing.T) {
	dir, rules := ordersRules(t)
	out, err := exec.Command(promtool(t), "check", "rules", filepath.Join(dir, "rules.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	want := fmt.Sprintf("SUCCESS: %d rules found", len(rules))
	if !strings.Contains(string(out), want) {
		t.Errorf("promtool check rules: want %q in\n%s", want, out)
	}
	for _, r := range rules {
		if r.Alert != "" && !strings.HasPrefix(r.Annotations["runbook_url"], "https://") {
			t.Errorf("alert %s %v has no runbook_url", r.Alert, r.Labels)
		}
	}
}

func TestPlatformRulesPassPromtoolCheck(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "platform.yaml")
	if err := os.WriteFile(f, PlatformRules(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool(t), "check", "rules", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// expect is one alert expected at an evaluation time: its labels; the
// annotations are taken from the generated rule with those labels, so the
// test checks when and with which labels an alert fires.
type expect struct {
	at     string
	alert  string
	labels []map[string]string // nil: none firing
}

type series struct{ name, values string }

// promtoolTest runs `promtool test rules` over the generated rules.
func promtoolTest(t *testing.T, interval string, in []series, exps []expect) {
	t.Helper()
	// Each test is one promtool process evaluating its rules at every
	// step: they run side by side.
	t.Parallel()
	dir, rules := ordersRules(t)
	type expAlert struct {
		Labels      map[string]string `yaml:"exp_labels"`
		Annotations map[string]string `yaml:"exp_annotations"`
	}
	type alertTest struct {
		EvalTime  string     `yaml:"eval_time"`
		Alertname string     `yaml:"alertname"`
		ExpAlerts []expAlert `yaml:"exp_alerts"`
	}
	type inputSeries struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	}
	var tests []alertTest
	for _, e := range exps {
		at := alertTest{EvalTime: e.at, Alertname: e.alert, ExpAlerts: []expAlert{}}
		for _, l := range e.labels {
			ann := annotationsOf(t, rules, e.alert, l)
			at.ExpAlerts = append(at.ExpAlerts, expAlert{Labels: l, Annotations: ann})
		}
		tests = append(tests, at)
	}
	var inputs []inputSeries
	for _, s := range in {
		inputs = append(inputs, inputSeries{s.name, s.values})
	}
	doc := map[string]any{
		"rule_files":          []string{"rules.yaml"},
		"evaluation_interval": interval,
		"tests":               []any{map[string]any{"interval": interval, "input_series": inputs, "alert_rule_test": tests}},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "test.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool(t), "test", "rules", "test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// annotationsOf returns the annotations of the generated alert whose
// labels are a subset of the expected labels, templates expanded.
func annotationsOf(t *testing.T, rules []rulefmt.Rule, alert string, labels map[string]string) map[string]string {
	t.Helper()
	for _, r := range rules {
		if r.Alert != alert {
			continue
		}
		match := true
		for k, v := range r.Labels {
			if labels[k] != v {
				match = false
			}
		}
		if match {
			ann := maps.Clone(r.Annotations)
			for k, v := range ann {
				ann[k] = strings.ReplaceAll(v, "{{ $labels.cluster }}", labels["cluster"])
			}
			return ann
		}
	}
	t.Fatalf("no generated %s rule matches %v", alert, labels)
	return nil
}

func burn(severity, window, slo string) map[string]string {
	return map[string]string{"service": "orders", "owner": "payments", "slo": slo, "severity": severity, "window": window}
}

func guard(alert, slo string) map[string]string {
	return map[string]string{"service": "orders", "owner": "payments", "slo": slo, "severity": "page"}
}

// kitSeries is orders' traffic as kit exports it, 600 requests a minute,
// all fast, with the given 5xx counter values.
func kitSeries(total, errors string) []series {
	return []series{
		{`http_server_requests_total{service="orders",status_class="2xx"}`, total},
		{`http_server_requests_total{service="orders",status_class="5xx"}`, errors},
		{`http_server_request_duration_seconds_bucket{service="orders",le="0.25"}`, total},
		{`http_server_request_duration_seconds_count{service="orders"}`, total},
		{`pave_probe_success{service="orders",cluster="dc1",route="GET /healthz"}`, "1x600"},
	}
}

// A total failure after seven healthy hours pages within the Workbook's
// detection time for 14.4x over 1h (0.0144 h = 52 s at 100% errors), i.e.
// at the first evaluation after the first failed minute. The 6x page needs
// 0.6% of 6h (2.2 min of errors) and follows. The ticket does not: it
// waits for a day of history (the coverage guard).
func TestFastBurnPages(t *testing.T) {
	promtoolTest(t, "1m",
		kitSeries("0+600x420 252000x30", "0x420 600+600x30"),
		[]expect{
			{at: "420m", alert: "ErrorBudgetBurn"},
			{at: "421m", alert: "ErrorBudgetBurn", labels: []map[string]string{burn("page", "1h", "availability")}},
			{at: "425m", alert: "ErrorBudgetBurn", labels: []map[string]string{burn("page", "1h", "availability"), burn("page", "6h", "availability")}},
		})
}

// A new service's first morning: a night at 8 requests a minute with six
// single failures (0.21%), then 100 a minute from 06:00. Until 06:30 the
// 3d window holds fewer than 6000 requests, so its ratio is over the
// ticket's 1x (0.1%), and from 06:02 over the minimum traffic (3000);
// the significant-burn guard compares with a 3-day average diluted by the
// days that are not there. Without the coverage guard the ticket fires
// for six failed requests, 0.003% of a month's budget at this traffic;
// with it the ticket waits for a day of history.
func TestNewServiceFirstNightDoesNotTicket(t *testing.T) {
	promtoolTest(t, "1m",
		kitSeries("0+8x360 2980+100x89", "0x59 1x59 2x59 3x59 4x59 5x29 6x89"),
		[]expect{
			{at: "365m", alert: "ErrorBudgetBurn"},
			{at: "380m", alert: "ErrorBudgetBurn"},
			{at: "400m", alert: "ErrorBudgetBurn"},
		})
}

// A service one day and six hours old burns at 5x the allowed rate: once
// its day of history is there the ticket judges the window it has, and
// fires when the 3d ratio crosses 0.1% (7.5 hours into the burn).
func TestSecondDaySlowBurnTickets(t *testing.T) {
	promtoolTest(t, "10m",
		kitSeries("0+6000x240", "0x180 30+30x60"),
		[]expect{
			{at: "1d12h", alert: "ErrorBudgetBurn"},
			{at: "1d16h", alert: "ErrorBudgetBurn", labels: []map[string]string{burn("ticket", "3d", "availability")}},
		})
}

// A slow burn at 5x the allowed rate (0.5% errors, under the 6x page)
// after three healthy days opens a ticket once the 3d window holds more
// than 0.1% errors (after 14.4 h) and never pages.
func TestSlowBurnTickets(t *testing.T) {
	promtoolTest(t, "10m",
		// 6000 requests per 10 minutes; 30 of them failing from day 3.
		kitSeries("0+6000x552", "0x432 30+30x120"),
		[]expect{
			{at: "3d12h", alert: "ErrorBudgetBurn"},
			{at: "3d16h", alert: "ErrorBudgetBurn", labels: []map[string]string{burn("ticket", "3d", "availability")}},
			{at: "3d20h", alert: "ErrorBudgetBurn", labels: []map[string]string{burn("ticket", "3d", "availability")}},
		})
}

// A blip, 10% errors for 30 s (30 failures in one minute), burns 0.1% of
// the monthly budget: nothing fires, then or later.
func TestBlipIsSilent(t *testing.T) {
	promtoolTest(t, "1m",
		kitSeries("0+600x120", "0x70 30x50"),
		[]expect{
			{at: "71m", alert: "ErrorBudgetBurn"},
			{at: "75m", alert: "ErrorBudgetBurn"},
			{at: "100m", alert: "ErrorBudgetBurn"},
		})
}

// At night one request a minute; one of them fails. Its 1h ratio (1.7%)
// and 5m ratio (20%) are both over the 14.4x threshold (1.44%), so
// without the minimum-traffic guard (209 requests an hour) it would page.
func TestLowTrafficNightIsSilent(t *testing.T) {
	promtoolTest(t, "1m",
		kitSeries("0+1x120", "0x70 1x50"),
		[]expect{
			{at: "71m", alert: "ErrorBudgetBurn"},
			{at: "73m", alert: "ErrorBudgetBurn"},
			{at: "90m", alert: "ErrorBudgetBurn"},
		})
}

// Series that stop (instances gone, scrape failing) fire the absent guard
// with the service's labels, for both SLOs; nothing fires before.
func TestStoppedSeriesFiresAbsentGuard(t *testing.T) {
	promtoolTest(t, "1m",
		kitSeries("0+600x60 _x60", "0x60 _x60"),
		[]expect{
			{at: "60m", alert: "SLOSeriesAbsent"},
			{at: "70m", alert: "SLOSeriesAbsent"},
			{at: "80m", alert: "SLOSeriesAbsent", labels: []map[string]string{guard("SLOSeriesAbsent", "availability"), guard("SLOSeriesAbsent", "latency")}},
		})
}

// Traffic that stops while the counters stay (a total outage in front of
// the service) pages through SLOTrafficStopped; the burn-rate alerts see
// no ratio at all.
func TestZeroTrafficOutagePages(t *testing.T) {
	promtoolTest(t, "1m",
		kitSeries("0+600x70 42000x40", "0x110"),
		[]expect{
			{at: "75m", alert: "SLOTrafficStopped"},
			{at: "82m", alert: "SLOTrafficStopped", labels: []map[string]string{guard("SLOTrafficStopped", "availability"), guard("SLOTrafficStopped", "latency")}},
			{at: "82m", alert: "ErrorBudgetBurn"},
		})
}

// A probe that fails three times in a row for 2 minutes pages per cluster
// even with no traffic at all; one failed check does not.
func TestProbeFailurePages(t *testing.T) {
	in := []series{
		{`pave_probe_success{service="orders",cluster="dc1",route="GET /healthz"}`, "1x20 0x1 1x10 0x20"},
		{`pave_probe_success{service="orders",cluster="dc2",route="GET /healthz"}`, "1x60"},
	}
	probe := map[string]string{"service": "orders", "owner": "payments", "route": "GET /healthz", "severity": "page", "cluster": "dc1"}
	promtoolTest(t, "1m", in, []expect{
		{at: "24m", alert: "ProbeFailing"},
		{at: "33m", alert: "ProbeFailing"},
		{at: "37m", alert: "ProbeFailing", labels: []map[string]string{probe}},
	})
}

// A quiet night after a busy morning: two requests a minute, six of them
// failing within five minutes. Over 6h and 30m that is 0.83% and 10%,
// both over the 6x threshold (0.6%), and the 6h window holds 720 requests,
// over the minimum-traffic guard (501): only the significant-burn guard
// keeps it silent, as six failed requests are far from the 54 that half
// of the 6x tier's share of the budget is at this service's 3-day average
// traffic (50 requests a minute).
func TestQuietNightFailuresDoNotPageTheSixHourTier(t *testing.T) {
	promtoolTest(t, "1m",
		// 6h at 600 a minute, then 2 a minute from minute 360.
		kitSeries("0+600x360 216002+2x440", "0x760 1+1x5 6x40"),
		[]expect{
			{at: "770m", alert: "ErrorBudgetBurn"},
			{at: "790m", alert: "ErrorBudgetBurn"},
			{at: "800m", alert: "ErrorBudgetBurn"},
		})
}

// The same quiet night with a real outage, every request failing for 45
// minutes (90 failed requests), pages through the 6h tier once the
// failures reach the guard's 54: the guard counts failures against the
// usual traffic, it does not mute quiet hours. (The 1h tier's minimum
// traffic, 209 requests an hour, keeps it out.)
func TestQuietNightOutagePagesTheSixHourTier(t *testing.T) {
	promtoolTest(t, "1m",
		kitSeries("0+600x360 216002+2x400 216802x55", "0x760 2+2x44 90x10"),
		[]expect{
			{at: "770m", alert: "ErrorBudgetBurn"},
			{at: "805m", alert: "ErrorBudgetBurn", labels: []map[string]string{burn("page", "6h", "availability")}},
		})
}

// After a slow burn (2% for 6h, 16% of the budget) the 3d window stays over
// 1x for days. A quiet night later, two failed requests in 360 lift the 6h
// window to 0.56%, over the ticket's 0.1%: without the significant-burn
// guard on the short window the ticket would re-open every quiet night;
// with it the ticket stays closed (two failures against the 108 that half
// the tier's share is at the service's usual traffic).
func TestTicketDoesNotReopenOnQuietNightsAfterASlowBurn(t *testing.T) {
	promtoolTest(t, "10m",
		// 10-minute steps: 3 days at 6000, 6h of burn (5880 good, 120
		// failed), 6h at 6000, then a night at 10 with 2 failures at 3d17h10m.
		kitSeries("0+6000x432 2597880+5880x35 2809680+6000x35 3019690+10x35", "0x432 120+120x35 4320x65 4322x6"),
		[]expect{
			// (no 5m window at 10-minute steps, so no 1h page here)
			{at: "3d4h40m", alert: "ErrorBudgetBurn", labels: []map[string]string{burn("page", "6h", "availability"), burn("ticket", "3d", "availability")}},
			{at: "3d17h30m", alert: "ErrorBudgetBurn"},
			{at: "3d18h", alert: "ErrorBudgetBurn"},
		})
}
