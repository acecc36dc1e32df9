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

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/inventory/inventorytest"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/servicemap"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/web"
)

// TestFleetPagesInChromium: the service fleet table over real
// repositories, the service map over access logs in the real telemetry
// store (laid out by dagre), and the clusters page over a real registry
// with its drain button (screenshots services-fleet.png, servicemap.png,
// clusters.png).
func TestFleetPagesInChromium(t *testing.T) {
	requireBrowser(t)
	dir := t.TempDir()
	ctx := context.Background()

	inventorytest.NewService(t, filepath.Join(dir, "svc"), inventorytest.Service{Name: "ledger", Version: 1})
	inventorytest.NewService(t, filepath.Join(dir, "svc"), inventorytest.Service{Name: "orders"})
	fleetFile := filepath.Join(dir, "fleet.yaml")
	os.WriteFile(fleetFile, []byte("services:\n  - path: svc/orders\n  - path: svc/ledger\n  - path: svc/gone\n"), 0o644)

	tel, err := telemetry.Open(ctx, telemetry.Options{Dir: filepath.Join(dir, "telemetry"), MaintainEvery: -1, ColdAfter: -1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Close()
	now := time.Now()
	var logs []telemetry.Log
	for i := range 60 {
		at := now.Add(-time.Duration(i) * time.Second)
		logs = append(logs, telemetry.Log{Time: at, Service: "orders", Version: "v1", Kind: "access", Level: "INFO", Caller: "checkout", Cluster: "seoul", Status: 200, DurationMS: 12})
		status := 200
		if i%5 == 0 {
			status = 502
		}
		logs = append(logs, telemetry.Log{Time: at, Service: "payments", Version: "v4", Kind: "access", Level: "INFO", Caller: "orders", Cluster: "seoul", Status: status, DurationMS: 40,
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00000000000000a1"})
		if i%3 == 0 { // busan: its own caller, and checkout as in seoul
			logs = append(logs, telemetry.Log{Time: at, Service: "orders", Version: "v1", Kind: "access", Level: "INFO", Caller: "mobile", Cluster: "busan", Status: 200, DurationMS: 20},
				telemetry.Log{Time: at, Service: "orders", Version: "v1", Kind: "access", Level: "INFO", Caller: "checkout", Cluster: "busan", Status: 200, DurationMS: 15})
		}
		if i < 6 {
			logs = append(logs, telemetry.Log{Time: at, Service: "orders", Version: "v2", Kind: "access", Level: "INFO", Caller: "checkout", Cluster: "seoul", Status: 200, DurationMS: 9})
		}
	}
	if err := tel.AppendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}

	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := &fleet.Registry{Store: st, DataDir: dir}
	for i, name := range []string{"seoul", "busan"} {
		if err := reg.EnsureLocal(ctx, name, "dc-"+name, i); err != nil {
			t.Fatal(err)
		}
	}

	// Reads are open; drain needs a deployer or admin token, which the page
	// sends; the page shows its buttons only for those.
	tokens := auth.Tokens{Store: st}
	_, admin, err := tokens.Create(ctx, "admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	_, viewer, _ := tokens.Create(ctx, "viewer", auth.RoleViewer)
	_, deployer, _ := tokens.Create(ctx, "deployer", auth.RoleDeployer)
	srv := server.New(server.Options{Tokens: tokens, Open: true, Log: slog.New(slog.DiscardHandler)})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	server.TelemetryAPI{Store: tel}.Register(srv)
	server.FleetServicesAPI{FleetFile: fleetFile, CacheDir: filepath.Join(dir, "cache")}.Register(srv)
	server.ServiceMapAPI{Store: tel, Canaries: func(context.Context) ([]servicemap.Canary, error) {
		return []servicemap.Canary{{Service: "orders", Version: "v2"}}, nil
	}}.Register(srv)
	server.ClustersAPI{Registry: reg}.Register(srv)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	artifacts := testproc.ArtifactsDir(t)
	if err := testproc.RunBrowserScript(ctx, t, testproc.BrowserScript{
		Dir: ".", Name: "fleet.mjs", Budget: 3 * time.Minute,
		Env: []string{"PAVE_URL=" + ts.URL, "PAVE_ARTIFACTS=" + artifacts, "PAVE_ADMIN_TOKEN=" + admin, "PAVE_VIEWER_TOKEN=" + viewer, "PAVE_DEPLOYER_TOKEN=" + deployer},
	}); err != nil {
		t.Fatal(err)
	}
	c, err := reg.Get(ctx, "busan")
	if err != nil || !c.Drain.Draining {
		t.Errorf("busan after the Drain button: %+v, %v", c.Drain, err)
	}
	for _, shot := range []string{"services-fleet.png", "servicemap.png", "clusters.png"} {
		if _, err := os.Stat(filepath.Join(artifacts, shot)); err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}
}
