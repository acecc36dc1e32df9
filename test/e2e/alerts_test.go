package e2e

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/alert"
	"github.com/pave-platform/pave/internal/metrics"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/web"
)

// TestAlertsPageInChromium: a real rule engine over a real store; the
// alerts page shows firing, pending and silenced alerts with why, and the
// state history of each on a time axis (screenshot alerts.png).
func TestAlertsPageInChromium(t *testing.T) {
	requireBrowser(t)
	dir := t.TempDir()
	store, err := metrics.Open(metrics.Options{Dir: filepath.Join(dir, "metrics"), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rules := filepath.Join(dir, "a.rules.yml")
	os.WriteFile(rules, []byte(`groups:
- name: a
  interval: 1s
  rules:
  - alert: OrdersDown
    expr: vector(1)
    labels: {service: orders, severity: page}
  - alert: SearchSlow
    expr: vector(1)
    for: 1h
    labels: {service: search}
  - alert: PaymentsTicket
    expr: vector(1)
    labels: {service: payments, severity: ticket}
`), 0o600)
	eng, err := alert.New(alert.Options{Dir: filepath.Join(dir, "alerting"), Queryable: store.DB(), Appendable: store.DB(), QueryEngine: store.Engine(), RuleFiles: []string{rules}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := eng.AddSilence(ctx, alert.NewSilence{Matchers: "service=payments", EndsAt: time.Now().Add(time.Hour), CreatedBy: "ana", Comment: "DB migration OPS-42"}); err != nil {
		t.Fatal(err)
	}

	srv := server.New(server.Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	var routes []server.MetricsRoute
	for _, p := range metrics.APIPaths {
		routes = append(routes, server.MetricsRoute{Path: p.Path, Post: p.Post})
	}
	server.MetricsAPI{Handler: store.API(), Routes: routes}.Register(srv)
	server.AlertsAPI{Engine: eng}.Register(srv)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	artifacts := testproc.ArtifactsDir(t)
	if err := testproc.RunBrowserScript(context.Background(), t, testproc.BrowserScript{
		Dir: ".", Name: "alerts.mjs", Env: []string{"PAVE_URL=" + ts.URL, "PAVE_ARTIFACTS=" + artifacts},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(artifacts, "alerts.png")); err != nil {
		t.Errorf("screenshot: %v", err)
	}
}
