package e2e

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/web"
)

// TestLogVolumeBarsInChromium: above the results, the logs page draws the
// matching lines per time bucket stacked by level, counted by the
// telemetry store (GET /api/v1/logs/count), and a click on a bar narrows
// the search to that bucket (test/e2e/logs-volume.mjs, screenshots
// logs-volume.png and logs-volume-narrowed.png).
func TestLogVolumeBarsInChromium(t *testing.T) {
	requireBrowser(t)
	if _, err := fs.Stat(web.Static, "static/lib/uplot/uPlot.esm.js"); err != nil {
		t.Fatal("uPlot is not embedded (web/static/lib/uplot): run `bash scripts/deps.sh` before building the tests")
	}
	store, err := telemetry.Open(context.Background(), telemetry.Options{Dir: t.TempDir(), MaintainEvery: -1, ColdAfter: -1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// An hour of orders: an INFO line every 30 s, a burst of 30 ERRORs
	// 20–25 minutes ago, 10 WARNs 40 minutes ago; and payments lines the
	// service filter must leave out of the bars.
	now := time.Now()
	var logs []telemetry.Log
	add := func(at time.Time, svc, level string) {
		logs = append(logs, telemetry.Log{Time: at, Service: svc, Version: "v1", Level: level, Kind: "app", Message: level + " line"})
	}
	want := 0
	for i := 1; i <= 118; i++ {
		add(now.Add(-time.Duration(i)*30*time.Second), "orders", "INFO")
		add(now.Add(-time.Duration(i)*30*time.Second-time.Second), "payments", "ERROR")
		want++
	}
	for i := range 30 {
		add(now.Add(-25*time.Minute+time.Duration(i)*10*time.Second), "orders", "ERROR")
		want++
	}
	for i := range 10 {
		add(now.Add(-40*time.Minute+time.Duration(i)*time.Second), "orders", "WARN")
		want++
	}
	if err := store.AppendLogs(context.Background(), logs[:len(logs)/2]); err != nil {
		t.Fatal(err)
	}
	if err := store.Flush(context.Background()); err != nil { // half from blocks, half from memory
		t.Fatal(err)
	}
	if err := store.AppendLogs(context.Background(), logs[len(logs)/2:]); err != nil {
		t.Fatal(err)
	}

	srv := server.New(server.Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	server.TelemetryAPI{Store: store, Stats: store.Stats}.Register(srv)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	artifacts := testproc.ArtifactsDir(t)
	burst := now.Add(-22 * time.Minute).Unix()
	if err := testproc.RunBrowserScript(context.Background(), t, testproc.BrowserScript{
		Dir: ".", Name: "logs-volume.mjs", Args: []string{ts.URL, strconv.Itoa(want), strconv.FormatInt(burst, 10)},
		Env: []string{"PAVE_ARTIFACTS=" + artifacts},
	}); err != nil {
		t.Fatal(err)
	}
	for _, shot := range []string{"logs-volume.png", "logs-volume-narrowed.png"} {
		if _, err := os.Stat(filepath.Join(artifacts, shot)); err != nil {
			t.Errorf("screenshot %s: %v", shot, err)
		}
	}
}
