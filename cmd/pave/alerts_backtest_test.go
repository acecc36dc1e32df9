package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/alert/slo"
)

func runBacktest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newAlertsBacktestCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// backtestBinary runs `pave alerts backtest` in the built binary and
// returns what it printed on stdout. The replay evaluates hours of rules;
// in the binary, built without -race, it takes seconds, where in this
// test process under -race it took minutes (the race detector watches
// internal/alert/backtest in its own tests).
func backtestBinary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(paveBin(), append([]string{"alerts", "backtest"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("pave alerts backtest: %v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// Two rule sets over the same history, side by side: Pave's generated
// rules page on the burn within two minutes and not on the night's two
// errors; the plain threshold pages on both, later.
func TestAlertsBacktestComparesRuleSets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	svc, err := slo.Parse("orders", []byte("slos: {runbook: https://runbooks.example.com/orders, availability: {objective: 99.9}}"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := slo.Rules(svc)
	if err != nil {
		t.Fatal(err)
	}
	pave := write("pave.yaml", string(rules))
	threshold := write("threshold.yaml", `groups:
  - name: threshold
    rules:
      - alert: ErrorRatioHigh
        expr: sum by (service) (rate(http_server_requests_total{status_class="5xx"}[5m])) / sum by (service) (rate(http_server_requests_total[5m])) > 0.01
        for: 5m
        labels: {severity: page}
`)
	series := write("series.yaml", `start: 2026-01-05T00:00:00Z
interval: 1m
input_series:
  - series: 'http_server_requests_total{service="orders",status_class="2xx"}'
    values: '0+1x180 180+600x240 144180x5 144180+600x55'
  - series: 'http_server_requests_total{service="orders",status_class="5xx"}'
    values: '0x120 1x3 2x296 2+600x5 3002x55'
`)
	incidents := write("incidents.yaml", `incidents:
  - {service: orders, kind: night, expect: silent, start: 2026-01-05T02:00:00Z, end: 2026-01-05T02:05:00Z}
  - {service: orders, kind: fast-burn, start: 2026-01-05T07:01:00Z, end: 2026-01-05T07:06:00Z, budget: 0.1}
`)
	out, err := backtestBinary(t, "--rules", pave, "--rules", threshold, "--series", series, "--incidents", incidents, "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep backtestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.RuleSets) != 2 {
		t.Fatalf("%d rule sets; want 2\n%s", len(rep.RuleSets), out)
	}
	if p := rep.RuleSets[0]; p.Recall != 1 || p.FalsePages != 0 {
		t.Errorf("pave: recall %v, %d false pages; want 1 and 0", p.Recall, p.FalsePages)
	}
	if th := rep.RuleSets[1]; th.Recall != 1 || th.FalsePages != 1 {
		t.Errorf("threshold: recall %v, %d false pages; want 1 and 1 (the night)", th.Recall, th.FalsePages)
	}
	// --stepwise (Prometheus' rules manager at every step) scores the same.
	stepwise, err := backtestBinary(t, "--rules", pave, "--rules", threshold, "--series", series, "--incidents", incidents, "-o", "json", "--stepwise")
	if err != nil || stepwise != out {
		t.Errorf("--stepwise: %v\n%s\nwant the range evaluation's\n%s", err, stepwise, out)
	}
	text, err := backtestBinary(t, "--rules", pave, "--rules", threshold, "--series", series, "--incidents", incidents)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RULE SET", "precision", "1.000", "0.500", "fast-burn (page): paged/of"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

func TestAlertsBacktestRefusesBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte("days: 5\nservices: 2\nsped: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no rule files"},
		{[]string{"--rules", bad}, "give exactly one history"},
		{[]string{"--rules", bad, "--generate", spec}, `unknown field "sped"`},
		{[]string{"--rules", bad, "--tsdb", dir}, "no incidents to score against"},
		{[]string{"--rules", bad, "--tsdb", dir, "-o", "name"}, "backtest prints text, json or yaml"},
	} {
		_, err := runBacktest(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v; want %q", c.args, err, c.want)
		}
	}
}
