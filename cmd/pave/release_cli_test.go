package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/release/releasetest"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
)

// exitOf is the exit status of a finished pave process.
func exitOf(err error) int { return exitStatus(err) }

// The first hour's release UX against a real API and engine: releases by
// service, idempotent pause/resume with the resume hint, one line per
// change outside a terminal, --timeout, the exit statuses, a readable
// history and the phase said once.
func TestReleaseFirstHourCLI(t *testing.T) {
	t.Parallel()
	rig := releasetest.NewRig(t, nil)
	eng := rig.Engine
	s := server.New(server.Options{Tokens: auth.Tokens{Store: rig.Store}, Open: true, RunRoots: anyRunRoot(t), Log: slog.New(slog.DiscardHandler)})
	server.ReleaseAPI{Engine: eng}.Register(s)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	srv := []string{"PAVE_SERVER=" + ts.URL, "PAVE_TOKEN=" + adminToken(t, rig.Store)}
	ctx := context.Background()

	out, err := pave(t, srv, "release", "shop", "--version", "v2", "--binary", "/bin/shop", "--steps", "1,50,100")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	golden(t, "cli_release_create", out)
	if err := eng.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	// The service stands for its latest release.
	out, err = pave(t, srv, "release", "status", "shop")
	if err != nil || !strings.Contains(out, "shop-v2  shop v1 → v2  progressing  step 1/3 (1%)") {
		t.Fatalf("status by service: %v\n%s", err, out)
	}
	golden(t, "cli_release_status", out)
	if strings.Contains(out, "\x1b[") {
		t.Errorf("escape codes outside a terminal:\n%q", out)
	}

	// Pause twice, resume twice: the second of each is a no-op, not an error.
	out, err = pave(t, srv, "release", "pause", "shop")
	if err != nil || !strings.Contains(out, "release shop-v2 is paused") || !strings.Contains(out, "pave release resume shop-v2") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "pause", "shop-v2")
	if err != nil || !strings.Contains(out, "already paused") {
		t.Fatalf("second pause: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "status", "shop")
	if err != nil || !strings.Contains(out, "paused: resume with `pave release resume shop-v2`") {
		t.Fatalf("paused status: %v\n%s", err, out)
	}
	// Waiting on a paused release ends at --timeout with exit 4, saying how
	// to resume; outside a terminal the unchanged state is printed once.
	start := time.Now()
	out, err = pave(t, srv, "release", "status", "shop", "--watch", "--timeout", "2500ms")
	if code := exitOf(err); code != exitTimeout || !strings.Contains(out, "timed out after 2.5s waiting for release shop-v2") ||
		!strings.Contains(out, "resume it with `pave release resume shop-v2`") {
		t.Fatalf("watch with --timeout: exit %d\n%s", code, out)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("--timeout 2.5s took %s", took)
	}
	if n := strings.Count(out, "shop-v2 paused step"); n != 1 {
		t.Errorf("want one progress line for an unchanged release, got %d:\n%s", n, out)
	}
	for range 2 {
		out, err = pave(t, srv, "release", "resume", "shop")
		if err != nil || !strings.Contains(out, "progressing") {
			t.Fatalf("resume: %v\n%s", err, out)
		}
	}
	if !strings.Contains(out, "already progressing") {
		t.Errorf("second resume: %s", out)
	}

	// An aborted release: exit 3.
	if out, err = pave(t, srv, "release", "abort", "shop"); err != nil {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "status", "shop", "--watch")
	if code := exitOf(err); code != exitFailed || !strings.Contains(out, "release shop-v2 aborted: by") {
		t.Fatalf("watch of an aborted release: exit %d\n%s", code, out)
	}
	out, err = pave(t, srv, "release", "history", "shop-v2")
	if err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	golden(t, "cli_release_history", out)
	if strings.Contains(out, "{") {
		t.Errorf("history shows JSON fragments:\n%s", out)
	}

	// A rolled-back release: exit 2, the phase said once.
	if out, err = pave(t, srv, "release", "shop", "--version", "v3", "--binary", "/bin/shop", "--steps", "1,100"); err != nil {
		t.Fatalf("create v3: %v\n%s", err, out)
	}
	if err := eng.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	setPhase(t, rig, "shop-v3", release.RolledBack, "rolled back at step 1 (1%): error rate 4.00% above stable's 0.10%")
	out, err = pave(t, srv, "release", "status", "shop-v3", "--watch")
	if code := exitOf(err); code != exitRolledBack || !strings.Contains(out, "release shop-v3 rolled back: at step 1 (1%)") {
		t.Fatalf("watch of a rolled-back release: exit %d\n%s", code, out)
	}

	// A promoted release: exit 0, and "promoted" is not said twice.
	if out, err = pave(t, srv, "release", "shop", "--version", "v4", "--image", "r/shop:v4", "--supersede"); err != nil {
		t.Fatalf("create v4: %v\n%s", err, out)
	}
	if err := eng.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err = pave(t, srv, "release", "promote", "shop"); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "status", "shop-v4", "--watch")
	if err != nil || strings.Contains(out, "promoted: promoted") || !strings.Contains(out, "release shop-v4 promoted") {
		t.Fatalf("watch of a promoted release: %v\n%s", err, out)
	}

	// Reads take -o name and -o jsonpath.
	out, err = pave(t, srv, "release", "list", "-o", "name")
	if err != nil || !strings.HasPrefix(out, "release/shop-v4\n") || !strings.Contains(out, "release/shop-v2\n") {
		t.Fatalf("list -o name (newest first): %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "status", "shop", "-o", "jsonpath={.metadata.name} {.status.phase}")
	if err != nil || out != "shop-v4 promoted\n" {
		t.Fatalf("status -o jsonpath: %v %q", err, out)
	}
	out, err = pave(t, srv, "release", "status", "shop", "-o", "yaml")
	if err != nil || !strings.Contains(out, "kind: Release") || !strings.Contains(out, "phase: promoted") {
		t.Fatalf("status -o yaml: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "list", "-o", "wide")
	if err != nil || !strings.Contains(out, "WEIGHTS") || !strings.Contains(out, "VERDICT") {
		t.Fatalf("list -o wide: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "status", "nosuch")
	if exitOf(err) != exitError || !strings.Contains(out, `no release or service named "nosuch"`) {
		t.Fatalf("unknown name: %v\n%s", err, out)
	}

	// No control plane: exit 5, also for a wait.
	out, err = pave(t, []string{"PAVE_SERVER=127.0.0.1:1"}, "release", "status", "shop", "--watch")
	if exitOf(err) != exitUnreachable || !strings.Contains(out, "cannot reach the Pave control plane at http://127.0.0.1:1") {
		t.Fatalf("unreachable: exit %d\n%s", exitOf(err), out)
	}
}

// setPhase ends a release as the engine would have, by writing its stored
// state (the rig has no judges that could fail it).
func setPhase(t *testing.T, rig *releasetest.Rig, name string, p release.Phase, msg string) {
	t.Helper()
	ctx := context.Background()
	var r release.Release
	ver, err := state.GetJSON(ctx, rig.Store, release.StateKind, name, &r)
	if err != nil {
		t.Fatal(err)
	}
	r.Status.Phase, r.Status.Message, r.Status.Finished = p, msg, time.Now().UTC()
	r.Status.WeightsApplied = true
	if _, err := state.PutJSON(ctx, rig.Store, release.StateKind, name, r, ver); err != nil {
		t.Fatal(err)
	}
}

// The requests of the commands whose server side is another part of issue
// 14 (contracts 4 and 5, the undo endpoint): a recording server checks what
// the CLI sends, in addition to the real-server tests above.
func TestClientRequestsOfNewEndpoints(t *testing.T) {
	var mu sync.Mutex
	var got []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type")+" "+strings.TrimSpace(string(b)))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/v1/traffic/"):
			var req map[string]any
			_ = json.Unmarshal(b, &req)
			if req["force"] != true {
				w.WriteHeader(http.StatusConflict)
				_, _ = io.WriteString(w, `{"error":"service orders has an unfinished release orders-v2"}`)
				return
			}
			_, _ = io.WriteString(w, `{"service":"orders","weights":{"v1":1000000},"message":"release orders-v2 paused: traffic was set by hand"}`)
		case strings.HasSuffix(r.URL.Path, "/undo"):
			_, _ = io.WriteString(w, `{"apiVersion":"pave.dev/v1alpha1","kind":"Release","metadata":{"name":"orders-v1-2"},"spec":{"service":"orders","version":"v1"},"status":{"phase":"pending","stable":"v2","step":-1}}`)
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"apiVersion":"pave.dev/v1alpha1","kind":"Release","metadata":{"name":"payments-v1"},"spec":{"service":"payments","version":"v1"},"status":{"phase":"pending","step":-1}}`)
		}
	}))
	defer ts.Close()
	srv := []string{"PAVE_SERVER=" + ts.URL, "PAVE_TOKEN=pave_test_secret"}

	out, err := pave(t, srv, "release", "payments", "--version", "v1", "--binary", "/bin/payments", "--create")
	if err != nil || !strings.Contains(out, "release payments-v1 created") {
		t.Fatalf("release --create: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "traffic", "set", "orders", "v1=100")
	if err == nil || !strings.Contains(out, "unfinished release orders-v2") || !strings.Contains(out, "add --force") {
		t.Fatalf("traffic set during a release: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "traffic", "set", "orders", "v1=100", "--force")
	if err != nil || !strings.Contains(out, "orders: traffic set to v1=100") || !strings.Contains(out, "release orders-v2 paused") {
		t.Fatalf("traffic set --force: %v\n%s", err, out)
	}
	out, err = pave(t, srv, "release", "undo", "orders")
	if err != nil || !strings.Contains(out, "release orders-v1-2 created: orders v2 → v1") {
		t.Fatalf("undo: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`POST /api/v1/releases?create=true application/json {"apiVersion":"pave.dev/v1alpha1","kind":"Release","spec":{"binary":"/bin/payments","service":"payments","version":"v1"}}`,
		`PUT /api/v1/traffic/orders application/json {"weights":{"v1":1000000}}`,
		`PUT /api/v1/traffic/orders application/json {"weights":{"v1":1000000},"force":true}`,
		`POST /api/v1/services/orders/undo application/json {}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
