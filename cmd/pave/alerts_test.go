package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/alert"
	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/metrics"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
)

// `pave alerts`, `silence`, `silences` and `expire` against a real API
// over a real engine: states with why, silences need a deployer token
// (a viewer's is refused), the author is the token's name, bad input is
// refused naming the flag.
func TestAlertsCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ms, err := metrics.Open(metrics.Options{Dir: filepath.Join(dir, "metrics")})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	rules := filepath.Join(dir, "a.rules.yml")
	os.WriteFile(rules, []byte(`groups:
- name: a
  interval: 200ms
  rules:
  - alert: OrdersDown
    expr: vector(1)
    labels: {service: orders, severity: page}
  - alert: SearchSlow
    expr: vector(1)
    for: 1h
    labels: {service: search}
`), 0o600)
	eng, err := alert.New(alert.Options{Dir: filepath.Join(dir, "alerting"), Queryable: ms.DB(), Appendable: ms.DB(), QueryEngine: ms.Engine(),
		RuleFiles: []string{rules}, ReloadInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tokens := auth.Tokens{Store: store}
	s := server.New(server.Options{Tokens: tokens, Open: true, Log: slog.New(slog.DiscardHandler)})
	server.AlertsAPI{Engine: eng}.Register(s)
	ts := httptest.NewServer(s)
	defer ts.Close()
	_, deployer, err := tokens.Create(context.Background(), "ana", auth.RoleDeployer)
	if err != nil {
		t.Fatal(err)
	}
	_, viewer, _ := tokens.Create(context.Background(), "vic", auth.RoleViewer)
	asDeployer := []string{"PAVE_SERVER=" + ts.URL, "PAVE_TOKEN=" + deployer}
	asViewer := []string{"PAVE_SERVER=" + ts.URL, "PAVE_TOKEN=" + viewer}

	var out string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err = pave(t, asViewer, "alerts")
		if err == nil && strings.Contains(out, "firing") && strings.Contains(out, "OrdersDown") && strings.Contains(out, "pending") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "firing   OrdersDown") || !strings.Contains(out, "pending  SearchSlow") || !strings.Contains(out, "fires after `for` 1h0m0s") {
		t.Fatalf("pave alerts: %v\n%s", err, out)
	}

	out, err = pave(t, asViewer, "alerts", "silence", "--match", "service=orders", "--for", "2h", "--comment", "DB migration")
	if err == nil || !strings.Contains(out, "needs deployer") {
		t.Fatalf("a viewer's silence: want refused (needs deployer), got %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"--match", "", "--for", "2h", "--comment", "x"},
		{"--match", "service=orders", "--comment", "x"},
		{"--match", "service=orders", "--for", "2h"},
	} {
		out, err = pave(t, asDeployer, append([]string{"alerts", "silence"}, args...)...)
		if err == nil || !strings.Contains(out, "--") {
			t.Errorf("silence %v: want a refusal naming the flag, got %v\n%s", args, err, out)
		}
	}
	out, err = pave(t, asDeployer, "alerts", "silence", "--match", "service=orders", "--for", "2h", "--comment", "DB migration OPS-42", "-o", "json")
	if err != nil {
		t.Fatalf("silence: %v\n%s", err, out)
	}
	var sil alert.Silence
	if err := json.Unmarshal([]byte(out), &sil); err != nil || sil.CreatedBy != "ana" || sil.State != "active" || time.Until(sil.EndsAt) < 119*time.Minute {
		t.Fatalf("silence answer: %v %+v\n%s", err, sil, out)
	}
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err = pave(t, asViewer, "alerts")
		if strings.Contains(out, "silenced") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "silenced  OrdersDown") || !strings.Contains(out, "by ana") || !strings.Contains(out, "DB migration OPS-42") {
		t.Fatalf("pave alerts after the silence: %v\n%s", err, out)
	}
	out, err = pave(t, asViewer, "alerts", "silences")
	if err != nil || !strings.Contains(out, sil.ID) || !strings.Contains(out, `service="orders"`) {
		t.Fatalf("pave alerts silences: %v\n%s", err, out)
	}
	out, err = pave(t, asViewer, "alerts", "expire", sil.ID)
	if err == nil {
		t.Fatalf("a viewer expired a silence:\n%s", out)
	}
	out, err = pave(t, asDeployer, "alerts", "expire", sil.ID)
	if err != nil || !strings.Contains(out, "expired") {
		t.Fatalf("expire: %v\n%s", err, out)
	}
	out, err = pave(t, asDeployer, "alerts", "expire", "no-such-silence")
	if err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("expire of an unknown silence: %v\n%s", err, out)
	}
	out, err = pave(t, asViewer, "alerts", "silences", "-o", "yaml")
	if err != nil || !strings.Contains(out, "state: expired") {
		t.Fatalf("silences -o yaml: %v\n%s", err, out)
	}
}

// `pave up --rule-files` wires the engine: rules over the store's own
// series (Pave scrapes itself), Prometheus' /api/v1/alerts, `pave alerts`;
// a rule file with a bad expression refuses `pave up`'s file at reload
// and is shown by `pave alerts` while the old rule keeps firing.
func TestAlertsThroughPaveUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	good := "groups:\n- name: up\n  rules:\n  - alert: PaveScraped\n    expr: up{job=\"pave\"} == 1\n    labels: {severity: ticket}\n"
	os.WriteFile(rules, []byte(good), 0o600)
	p := startUp(t, filepath.Join(dir, "data"), "--rule-files", rules, "--metrics-scrape-interval", "1s")
	var out string
	var err error
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		out, err = pave(t, nil, "--server", p.api, "alerts")
		if err == nil && strings.Contains(out, "PaveScraped") && strings.Contains(out, "Watchdog") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || !firingRow(out, "PaveScraped") || !firingRow(out, "Watchdog") {
		t.Fatalf("pave alerts through pave up: %v\n%s\n%s", err, out, p.out.String())
	}
	os.WriteFile(rules, []byte(strings.Replace(good, "== 1", "== (1", 1)), 0o600)
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err = pave(t, nil, "--server", p.api, "alerts")
		if strings.Contains(out, "rule file refused") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "rule file refused") || !strings.Contains(out, rules) || !firingRow(out, "PaveScraped") {
		t.Fatalf("a bad rule file through pave up: %v\n%s", err, out)
	}
}

// firingRow reports whether `pave alerts` lists alert as firing (columns
// are as wide as their longest cell, so other alerts move them).
func firingRow(out, alert string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "firing" && f[1] == alert {
			return true
		}
	}
	return false
}
