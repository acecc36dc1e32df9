package alert

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pave-platform/pave/internal/metrics"
)

// testEngine is an engine over a real embedded metrics store.
type testEngine struct {
	*Engine
	store  *metrics.Store
	cancel context.CancelFunc
	done   chan error
}

func openStore(t *testing.T, dir string) *metrics.Store {
	t.Helper()
	st, err := metrics.Open(metrics.Options{Dir: filepath.Join(dir, "metrics")})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func startEngine(t *testing.T, st *metrics.Store, o Options) *testEngine {
	t.Helper()
	o.Queryable, o.Appendable, o.QueryEngine = st.DB(), st.DB(), st.Engine()
	if o.ReloadInterval == 0 {
		o.ReloadInterval = 100 * time.Millisecond
	}
	if o.EvalInterval == 0 {
		o.EvalInterval = 200 * time.Millisecond
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	te := &testEngine{Engine: e, store: st, cancel: cancel, done: make(chan error, 1)}
	go func() { te.done <- e.Run(ctx) }()
	return te
}

func (te *testEngine) stop(t *testing.T) {
	t.Helper()
	te.cancel()
	select {
	case err := <-te.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("engine did not stop within 30s")
	}
}

// appendNow writes one sample of name{lbls} at the current time.
func appendNow(t *testing.T, st *metrics.Store, v float64, lbls ...string) {
	t.Helper()
	app := st.DB().Appender(context.Background())
	if _, err := app.Append(0, labels.FromStrings(lbls...), time.Now().UnixMilli(), v); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last: %s", what, d, last)
}

const ordersRules = `groups:
- name: orders
  interval: 200ms
  rules:
  - record: service:pave_test_errors:sum
    expr: sum by (service) (pave_test_errors)
  - alert: OrdersErrors
    expr: service:pave_test_errors:sum > 5
    for: 0s
    keep_firing_for: 2s
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.service }} has {{ $value }} errors'
      runbook_url: https://runbooks.example/orders
  - alert: OrdersSlow
    expr: service:pave_test_errors:sum > 1
    for: 1h
    labels:
      severity: ticket
`

// TestRulesAndAlertsAPIAsPrometheus evaluates a rule file over the real
// store (a recording rule written back and read by an alerting rule with
// for, keep_firing_for, labels and a templated annotation) and reads
// /api/v1/rules and /api/v1/alerts with client_golang's v1 API, the
// client Grafana-style tools use.
func TestRulesAndAlertsAPIAsPrometheus(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o700)
	if err := os.WriteFile(filepath.Join(rulesDir, "orders.yaml"), []byte(ordersRules), 0o600); err != nil {
		t.Fatal(err)
	}
	te := startEngine(t, st, Options{Dir: filepath.Join(dir, "alerting"), RuleFiles: []string{filepath.Join(rulesDir, "*.yaml")}})
	defer te.stop(t)
	srv := httptest.NewServer(te.API())
	defer srv.Close()
	c, err := promapi.NewClient(promapi.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	api := v1.NewAPI(c)
	ctx := context.Background()

	stopFeeding := make(chan struct{})
	fed := make(chan struct{})
	var stopOnce sync.Once
	stopFeed := func() { stopOnce.Do(func() { close(stopFeeding) }); <-fed }
	defer stopFeed()
	go func() {
		defer close(fed)
		for {
			appendNow(t, st, 7, "__name__", "pave_test_errors", "service", "orders", "instance", "a")
			select {
			case <-stopFeeding:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	var firing v1.Alert
	eventually(t, 10*time.Second, "OrdersErrors firing in /api/v1/alerts", func() (bool, string) {
		res, err := api.Alerts(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range res.Alerts {
			if a.Labels["alertname"] == "OrdersErrors" && a.State == v1.AlertStateFiring {
				firing = a
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", res.Alerts)
	})
	if got := string(firing.Annotations["summary"]); got != "orders has 7 errors" {
		t.Errorf("templated summary = %q, want %q", got, "orders has 7 errors")
	}
	if firing.Labels["severity"] != "page" || firing.Value != "7e+00" || firing.ActiveAt.IsZero() {
		t.Errorf("alert = %+v; want severity=page, value 7e+00, activeAt set", firing)
	}

	eventually(t, 10*time.Second, "rules API: the recording rule, OrdersSlow pending with for 1h, Watchdog firing", func() (bool, string) {
		rules, err := api.Rules(ctx, nil)
		if err != nil {
			return false, err.Error()
		}
		var sawRecording, sawSlowPending, sawWatchdog bool
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				switch r := r.(type) {
				case v1.RecordingRule:
					if r.Name == "service:pave_test_errors:sum" && r.Health == v1.RuleHealthGood && !r.LastEvaluation.IsZero() {
						sawRecording = true
					}
				case v1.AlertingRule:
					if r.Name == "OrdersSlow" && r.State == "pending" && r.Duration == 3600 && len(r.Alerts) == 1 {
						sawSlowPending = true
					}
					if r.Name == "Watchdog" && r.State == "firing" && g.File == "source:platform" {
						sawWatchdog = true
					}
					if r.Name == "OrdersErrors" && (g.File != filepath.Join(rulesDir, "orders.yaml") || g.Interval != 0.2) {
						t.Errorf("group of OrdersErrors: file %q interval %v", g.File, g.Interval)
					}
				}
			}
		}
		return sawRecording && sawSlowPending && sawWatchdog, fmt.Sprintf("%v %v %v %+v", sawRecording, sawSlowPending, sawWatchdog, rules.Groups)
	})
	// The recording rule's series is in the store.
	res, _, _, err := v1.NewAPI(mustClient(t, st)).Query(ctx, "service:pave_test_errors:sum", time.Now())
	if err != nil || !strings.Contains(res.String(), "=> 7") {
		t.Errorf("recorded series: %v %v", res, err)
	}

	// keep_firing_for: after the condition stops, the alert keeps firing
	// for 2s, then resolves.
	stopFeed()
	appendNow(t, st, 0, "__name__", "pave_test_errors", "service", "orders", "instance", "a")
	stillFiring := time.Now()
	eventually(t, 10*time.Second, "OrdersErrors resolved after keep_firing_for", func() (bool, string) {
		res, err := api.Alerts(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range res.Alerts {
			if a.Labels["alertname"] == "OrdersErrors" {
				return false, "still " + string(a.State)
			}
		}
		return true, ""
	})
	if held := time.Since(stillFiring); held < 1500*time.Millisecond {
		t.Errorf("alert resolved %s after the condition ended; keep_firing_for is 2s", held)
	}
}

func mustClient(t *testing.T, st *metrics.Store) promapi.Client {
	t.Helper()
	srv := httptest.NewServer(st.API())
	t.Cleanup(srv.Close)
	c, err := promapi.NewClient(promapi.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBadRuleFileIsRefusedAndOldRulesKeepRunning: a file that stops
// parsing is refused with file, line and reason; its previous version
// keeps being evaluated; fixing it loads the fix; a bad in-memory source
// is refused by SetRuleSource.
func TestBadRuleFileIsRefusedAndOldRulesKeepRunning(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	file := filepath.Join(dir, "team.rules.yml")
	good := "groups:\n- name: team\n  rules:\n  - alert: TeamAlways\n    expr: vector(1)\n"
	os.WriteFile(file, []byte(good), 0o600)
	te := startEngine(t, st, Options{Dir: filepath.Join(dir, "alerting"), RuleFiles: []string{filepath.Join(dir, "*.rules.yml")}})
	defer te.stop(t)
	hasRule := func(name string) bool {
		for _, r := range te.Manager().AlertingRules() {
			if r.Name() == name {
				return true
			}
		}
		return false
	}
	eventually(t, 5*time.Second, "TeamAlways loaded", func() (bool, string) { return hasRule("TeamAlways"), "" })

	cases := []struct{ content, want string }{
		{"groups:\n- name: team\n  rules:\n  - alert: TeamAlways\n    expr: sum(rate(x[5m]) by\n", "5:11"},        // PromQL syntax error: line and column
		{"groups:\n- name: team\n  rules:\n  - alert: TeamAlways\n    expr: vector(1)\n    fore: 5m\n", "line 6"}, // unknown field
		{"groups:\n- name: team\n  rules:\n  - alert: TeamAlways\n    expr: vector(1)\n    annotations:\n      s: '{{ .Foo '\n", "template"},
	}
	for _, c := range cases {
		os.WriteFile(file, []byte(c.content), 0o600)
		eventually(t, 5*time.Second, "refusal of "+c.want, func() (bool, string) {
			errs := te.RuleFileErrors()
			return len(errs) == 1 && errs[0].File == file && strings.Contains(errs[0].Err, c.want), fmt.Sprintf("%+v", errs)
		})
		time.Sleep(300 * time.Millisecond)
		if !hasRule("TeamAlways") {
			t.Fatalf("after a bad version (%s), the loaded rule stopped", c.want)
		}
	}
	os.WriteFile(file, []byte(strings.ReplaceAll(good, "TeamAlways", "TeamFixed")), 0o600)
	eventually(t, 5*time.Second, "fixed file loaded", func() (bool, string) {
		return hasRule("TeamFixed") && !hasRule("TeamAlways") && len(te.RuleFileErrors()) == 0, fmt.Sprintf("%+v", te.RuleFileErrors())
	})

	if err := te.SetRuleSource("orders-slo", []byte("groups:\n- name: x\n  rules:\n  - record: a\n    expr: 'foo{'\n")); err == nil || !strings.Contains(err.Error(), "source:orders-slo") {
		t.Fatalf("bad in-memory source: err = %v, want a refusal naming source:orders-slo", err)
	}
	if err := te.SetRuleSource("orders-slo", []byte("groups:\n- name: slo\n  rules:\n  - alert: OrdersBurn\n    expr: vector(2)\n")); err != nil {
		t.Fatal(err)
	}
	if !hasRule("OrdersBurn") {
		t.Fatal("SetRuleSource did not load OrdersBurn")
	}
	if err := te.SetRuleSource("orders-slo", nil); err != nil || hasRule("OrdersBurn") {
		t.Fatalf("removing a source: err %v, still loaded %v", err, hasRule("OrdersBurn"))
	}
	// Removing a file removes its rules.
	os.Remove(file)
	eventually(t, 5*time.Second, "deleted file unloaded", func() (bool, string) { return !hasRule("TeamFixed"), "" })
	if !hasRule("Watchdog") {
		t.Fatal("Watchdog missing")
	}
}
