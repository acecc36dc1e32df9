package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/loadgen"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/testproc"
)

// TestReleaseEvidencePlotsInChromium: `pave up` runs examples/hello, a
// release of v2 goes 10→50→100% under traffic while the store scrapes
// every second, and the releases page draws the release's evidence from
// the store: rate, error ratio and p99 of v1 and v2 over the release, its
// steps marked (test/e2e/release-evidence.mjs, screenshot
// release-evidence.png).
func TestReleaseEvidencePlotsInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/hello and runs a release; run without -short")
	}
	t.Parallel() // its own pave up, ports and directories; it mostly waits
	e2e, err := filepath.Abs("../../test/e2e")
	if err != nil {
		t.Fatal(err)
	}
	requireChromium(t, e2e)
	repo := filepath.Dir(filepath.Dir(e2e))
	gw := freeAddr(t)
	up := startUp(t, t.TempDir(), "--gateway-addr", gw, "--metrics-scrape-interval", "1s", "--run-roots", repo)
	c := apiclient.New(up.api, "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		cctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
		defer stop()
		var list server.RuntimeList
		_ = c.Do(cctx, http.MethodGet, "/api/v1/runtime", nil, &list)
		_ = c.Do(cctx, http.MethodDelete, "/api/v1/runtime/hello", nil, nil)
		// Instances outlive the control plane by design (it adopts them
		// again); their spools must be gone before the temporary
		// directory is removed, so kill them and wait for the exit.
		for _, st := range list.Deployments {
			for _, in := range st.Instances {
				if in.PID <= 0 {
					continue
				}
				_ = syscall.Kill(-in.PID, syscall.SIGKILL)
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && syscall.Kill(in.PID, 0) == nil; {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
	})
	src := filepath.Join(repo, "examples", "hello")
	runRelease := func(version string, steps []string) release.Release {
		t.Helper()
		spec := map[string]any{"service": "hello", "version": version, "source": src, "replicas": 1, "steps": steps,
			"stepDuration": "5s", "stepSamples": 50, "maxHold": "60s", "onHoldTimeout": "fail",
			"analysis": map[string]any{"latencyFloorMs": 250, "errorFloor": 0.01}}
		var r release.Release
		body := map[string]any{"apiVersion": release.APIVersion, "kind": release.Kind, "spec": spec}
		if err := c.Do(ctx, http.MethodPost, "/api/v1/releases?create=true", body, &r); err != nil {
			t.Fatalf("release %s: %v", version, err)
		}
		for !r.Settled() {
			select {
			case <-ctx.Done():
				t.Fatalf("release %s did not end: %+v\n%s", version, r.Status, up.out)
			case <-time.After(300 * time.Millisecond):
			}
			if err := c.Do(ctx, http.MethodGet, "/api/v1/releases/"+r.Metadata.Name, nil, &r); err != nil {
				t.Fatal(err)
			}
		}
		if r.Status.Phase != release.Promoted {
			t.Fatalf("release %s: %s: %s", version, r.Status.Phase, r.Status.Message)
		}
		return r
	}
	runRelease("v1", []string{"100"})
	load := loadgen.New(loadgen.Options{Addr: gw, Host: "hello.localhost", Rate: 60, Request: loadgen.HelloMix})
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); load.Run(loadCtx) }()
	defer func() { stopLoad(); wg.Wait() }()
	time.Sleep(5 * time.Second) // v1's rate before the release
	r := runRelease("v2", []string{"10", "50", "100"})
	time.Sleep(6 * time.Second) // the last scrapes after the promotion
	stopLoad()
	wg.Wait()
	t.Logf("release %s: %s", r.Metadata.Name, r.Status.Message)

	artifacts := testproc.ArtifactsDir(t)
	if err := testproc.RunBrowserScript(context.Background(), t, testproc.BrowserScript{
		Dir: e2e, Name: "release-evidence.mjs", Args: []string{up.api, r.Metadata.Name, "v1", "v2"},
		Env: []string{"PAVE_ARTIFACTS=" + artifacts}, Budget: 5 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(artifacts, "release-evidence.png")); err != nil {
		t.Errorf("screenshot: %v", err)
	}
}

// requireChromium fails (never skips) when the browser tooling the UI
// tests need is missing; test/e2e's node_modules come from scripts/deps.sh.
func requireChromium(t *testing.T, e2e string) {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is missing at %s: scripts/deps.sh installs it", chromium)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is missing: scripts/deps.sh installs it")
	}
	if _, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is missing: bash scripts/deps.sh runs npm ci --prefix test/e2e")
	}
	if _, err := os.Stat(filepath.Join(e2e, "..", "..", "web", "static", "lib", "uplot", "uPlot.esm.js")); err != nil {
		t.Fatal("uPlot is not in web/static/lib/uplot (embedded into the binary): run bash scripts/deps.sh before the tests build pave")
	}
	// node runs test/e2e's scripts: the go command's test cache must see
	// them (docs/testing.md, "Reusing results").
	testproc.DeclareNodeScripts(e2e)
}
