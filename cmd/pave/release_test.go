package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/release/releasetest"
	"github.com/pave-platform/pave/internal/server"
)

// releaseControlPlane serves the release API over a real engine and SQLite
// store, with a router and target in memory.
func releaseControlPlane(t *testing.T) (string, *release.Engine) {
	t.Helper()
	rig := releasetest.NewRig(t, nil)
	eng := rig.Engine
	wd, err := os.Getwd() // the CLI makes --binary ./shop absolute from here
	if err != nil {
		t.Fatal(err)
	}
	roots, err := server.NewRunRoots([]string{wd})
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.Options{Tokens: auth.Tokens{Store: rig.Store}, Open: true, RunRoots: roots, Log: slog.New(slog.DiscardHandler)})
	server.ReleaseAPI{Engine: eng}.Register(s)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	// The commands run as children; they find the token in PAVE_TOKEN.
	_, secret, err := auth.Tokens{Store: rig.Store}.Create(context.Background(), "test", auth.RoleDeployer)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PAVE_TOKEN", secret)
	return ts.URL, eng
}

func TestReleaseCommands(t *testing.T) {
	url, eng := releaseControlPlane(t)
	srv := []string{"PAVE_SERVER=" + url}

	out, err := pave(t, srv, "release", "shop", "--version", "v2", "--binary", "./shop", "--steps", "1,10,5,100")
	if err == nil || !strings.Contains(out, "spec.steps[2]") || !strings.Contains(out, "must increase") {
		t.Fatalf("steps out of order: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "shop", "--version", "v2", "--binary", "./shop", "--steps", "0.01,1,100")
	if err != nil || !strings.Contains(out, "release shop-v2 created: shop v1 → v2") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if err := eng.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, srv, "release", "list", "-o", "json")
	var list []release.Release
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Status.Phase != release.Progressing {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if list[0].Spec.Binary == "./shop" || !filepath.IsAbs(list[0].Spec.Binary) {
		t.Errorf("the binary path was not made absolute: %s", list[0].Spec.Binary)
	}
	out, err = pave(t, srv, "release", "status", "shop-v2")
	if err != nil || !strings.Contains(out, "step 1/3 (0.01%)") || !strings.Contains(out, "v1=99.99 v2=0.01") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "pause", "shop-v2")
	if err != nil || !strings.Contains(out, "is paused") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "abort", "shop-v2")
	if err != nil || !strings.Contains(out, "is aborted") || !strings.Contains(out, "v1=100") {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	// Following a release that did not get promoted fails, for CI.
	out, err = pave(t, srv, "release", "status", "shop-v2", "--watch")
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != exitFailed || !strings.Contains(out, "aborted, not promoted") {
		t.Fatalf("watch of an aborted release: %v\n%s", err, out)
	}
	// A promoted one exits 0.
	if _, err := pave(t, srv, "release", "shop", "--version", "v3", "--image", "r/shop:v3"); err != nil {
		t.Fatal(err)
	}
	if err := eng.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := pave(t, srv, "release", "promote", "shop-v3"); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, srv, "release", "status", "shop-v3", "--watch", "-o", "json")
	var final release.Release
	if err != nil || json.Unmarshal([]byte(out), &final) != nil || final.Status.Phase != release.Promoted {
		t.Fatalf("watch of a promoted release: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "history", "shop-v2")
	if err != nil || !strings.Contains(out, "pause") || !strings.Contains(out, "abort") {
		t.Fatalf("history: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "status", "nope")
	if err == nil || !strings.Contains(out, `no release or service named "nope"`) {
		t.Fatalf("unknown release: %v\n%s", err, out)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// A relative path in a spec file is the spec file's, not the shell's: `pave
// release -f` from another directory sends the absolute path.
func TestReleaseSpecFileRelativePaths(t *testing.T) {
	url := releaseServer(t)
	specs := t.TempDir()
	spec := filepath.Join(specs, "shop-v3.yaml")
	if err := os.WriteFile(spec, []byte("apiVersion: pave.dev/v1alpha1\nkind: Release\nspec:\n  service: shop\n  version: v3\n  binary: ./bin/shop\n  supersede: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(paveBin(), "--server", url, "release", "-f", spec, "-o", "jsonpath={.spec.binary}")
	cmd.Dir = t.TempDir() // elsewhere
	out, err := cmd.CombinedOutput()
	if want := filepath.Join(specs, "bin", "shop") + "\n"; err != nil || string(out) != want {
		t.Fatalf("release -f with ./bin/shop: %v %q, want %q", err, out, want)
	}
}
