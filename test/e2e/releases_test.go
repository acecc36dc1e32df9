// Package e2e runs the web UI's browser scripts against a control plane
// started by the Go test.
package e2e

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/release/releasetest"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/internal/traffic"
	"github.com/pave-platform/pave/web"
)

// requireBrowser fails (never skips) when the browser tooling is missing.
func requireBrowser(t *testing.T) {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is missing at %s: scripts/test.sh installs it with `apt-get install -y chromium`", chromium)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is missing: scripts/test.sh installs it with `apt-get install -y nodejs npm`")
	}
	if _, err := os.Stat("node_modules/playwright-core"); err != nil {
		t.Fatal("playwright-core is missing: scripts/test.sh installs it with `npm ci --prefix test/e2e`")
	}
	// node runs this directory's scripts: the go command's test cache
	// must see them (docs/testing.md, "Reusing results").
	testproc.DeclareNodeScripts(".")
}

// liveTraffic counts requests as they would arrive at 1,000 per second,
// split by the router's current weights, with 1% errors.
type liveTraffic struct {
	mu     sync.Mutex
	router *releasetest.Router
	snap   stats.Snapshot
	n      map[string]int
}

func (l *liveTraffic) Snapshot(ctx context.Context, service string) (stats.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, _ := l.router.Weights(ctx, service)
	for v, ppm := range w {
		c := l.snap[v]
		for range int(100 * ppm / traffic.Total) {
			l.n[v]++
			status := 200
			if l.n[v]%100 == 0 {
				status = 500
			}
			c.Total.Observe(status, float64(20+l.n[v]%40))
		}
		l.snap[v] = c
	}
	out := stats.Snapshot{}
	for v, c := range l.snap {
		c.Total.Latency = append([]uint64(nil), c.Total.Latency...)
		out[v] = c
	}
	return out, nil
}

func TestReleasesPage(t *testing.T) {
	requireBrowser(t)
	rig := releasetest.NewRig(t, func(router *releasetest.Router) release.MetricSource {
		return &liveTraffic{router: router, snap: stats.Snapshot{}, n: map[string]int{}}
	})
	eng, router := rig.Engine, rig.Router
	srv := server.New(server.Options{Tokens: auth.Tokens{Store: rig.Store}, Open: true, Log: slog.New(slog.DiscardHandler)})
	// The page's buttons act with a deployer token handed over in the
	// address (#token=), as a user pastes the one `pave up` wrote.
	_, token, err := auth.Tokens{Store: rig.Store}.Create(context.Background(), "browser", auth.RoleDeployer)
	if err != nil {
		t.Fatal(err)
	}
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	server.ReleaseAPI{Engine: eng}.Register(srv)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	rel := release.New("shop", "v2")
	rel.Spec.Binary = "/srv/shop-v2"
	rel.Spec.StepDuration = release.Duration(time.Hour) // stay at 1% while the page is looked at
	if _, err := eng.Create(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx, 200*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	artifacts := testproc.ArtifactsDir(t)
	if err := testproc.RunBrowserScript(context.Background(), t, testproc.BrowserScript{
		Dir: ".", Name: "releases.mjs", Args: []string{ts.URL}, Env: []string{"PAVE_ARTIFACTS=" + artifacts, "PAVE_TOKEN=" + token},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := eng.Get(context.Background(), "shop-v2")
	if err != nil {
		t.Fatal(err)
	}
	w, _ := router.Weights(context.Background(), "shop")
	if got.Status.Phase != release.Aborted || w["v2"] != 0 {
		t.Fatalf("after the abort button: %s, weights %v", got.Status.Phase, w)
	}
	for _, shot := range []string{"releases-progressing.png", "releases-aborted.png"} {
		if _, err := os.Stat(filepath.Join(artifacts, shot)); err != nil {
			t.Errorf("screenshot %s: %v", shot, err)
		}
	}
}
