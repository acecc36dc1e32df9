package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// readyLocal is the real local runtime as the release engine sees it, but
// every version counts as ready: the test drives the engine's phases
// without starting processes. Its optional seams (the versions running,
// the artifact check) are the runtime's own.
type readyLocal struct{ t release.Target }

func (r readyLocal) Deploy(ctx context.Context, d release.Deployment) error {
	return r.t.Deploy(ctx, d)
}
func (r readyLocal) Remove(ctx context.Context, s, v string) error { return r.t.Remove(ctx, s, v) }
func (readyLocal) Status(context.Context, string, string) (bool, int, int, error) {
	return true, 1, 1, nil
}
func (r readyLocal) Versions(ctx context.Context, s string) ([]release.RunningVersion, error) {
	return r.t.(release.VersionLister).Versions(ctx, s)
}
func (r readyLocal) Services(ctx context.Context) ([]string, error) {
	return r.t.(release.ServiceLister).Services(ctx)
}
func (r readyLocal) CheckArtifact(ctx context.Context, d release.Deployment) error {
	return r.t.(release.ArtifactChecker).CheckArtifact(ctx, d)
}

type releaseTrafficRig struct {
	hs     *httptest.Server
	eng    *release.Engine
	router *traffic.GatewayRouter
}

// newReleaseTrafficServer serves the release and traffic APIs over one
// engine, the real gateway router and the real local runtime, with
// orders@v1 deployed by hand (as pave run does) at 2 replicas and no
// weights set.
func newReleaseTrafficServer(t *testing.T) *releaseTrafficRig {
	t.Helper()
	dir := t.TempDir()
	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw := gateway.New(gateway.Options{Log: quiet})
	// The gateway takes weights only for versions with endpoints.
	for i, v := range []string{"v1", "v2", "v3"} {
		gw.SetEndpoints("orders", v, []string{"127.0.0.1:" + strconv.Itoa(9001+i)})
	}
	router, err := traffic.NewGatewayRouter(context.Background(), st, gw, quiet)
	if err != nil {
		t.Fatal(err)
	}
	local, err := runtime.NewLocal(runtime.LocalOptions{Store: st, DataDir: dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Deploy(context.Background(), runtime.Deployment{Service: "orders", Version: "v1", Binary: "/bin/true", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	eng := release.NewEngine(st, router, readyLocal{fleet.ReleaseTarget(local)},
		release.MetricsFunc(func(context.Context, string) (stats.Snapshot, error) { return stats.Snapshot{}, nil }))
	s := New(Options{Tokens: auth.Tokens{Store: st}, Open: true, RunRoots: allRoots(t), Log: quiet})
	ReleaseAPI{Engine: eng}.Register(s)
	TrafficAPI{Router: router, Live: gw, Releases: eng}.Register(s)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	authorizeClient(t, hs, auth.Tokens{Store: st})
	return &releaseTrafficRig{hs: hs, eng: eng, router: router}
}

func (rig *releaseTrafficRig) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	code, _, raw := releaseCall(t, rig.hs, method, path, body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return code, m
}

func (rig *releaseTrafficRig) reconcile(t *testing.T) {
	t.Helper()
	if err := rig.eng.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (rig *releaseTrafficRig) weights(t *testing.T) traffic.Weights {
	t.Helper()
	w, err := rig.router.Weights(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func phase(m map[string]any) any { return m["status"].(map[string]any)["phase"] }

func releaseJSON(service, version, extra string) string {
	return `{"apiVersion":"pave.dev/v1alpha1","kind":"Release","spec":{"service":"` + service + `","version":"` + version + `","steps":[1,50,100]` + extra + `}}`
}

// Validation before creation: an unknown service needs create=true, and a
// relative or missing artifact is refused at once naming the field.
func TestReleaseCreationIsValidatedBeforeAnythingIsRecorded(t *testing.T) {
	rig := newReleaseTrafficServer(t)
	code, m := rig.call(t, "POST", "/api/v1/releases", releaseJSON("ordres", "v4", `,"binary":"/bin/true"`))
	if code != 404 || m["field"] != "spec.service" || !strings.Contains(m["error"].(string), "did you mean orders?") || !strings.Contains(m["error"].(string), "create=true") {
		t.Fatalf("a typo of the service: %d %v", code, m)
	}
	for _, c := range []struct{ extra, field, says string }{
		{`,"source":"./orders"`, "spec.source", "relative path"},
		{`,"source":"/no/such/dir"`, "spec.source", "does not exist"},
		{`,"binary":"/no/such/binary"`, "spec.binary", "does not exist"},
		{`,"image":"registry.local/orders:v2"`, "spec.image", "runs processes, not images"},
	} {
		code, m := rig.call(t, "POST", "/api/v1/releases", releaseJSON("orders", "v2", c.extra))
		if code != 422 || m["field"] != c.field || !strings.Contains(m["error"].(string), c.says) {
			t.Errorf("%s: want 422 naming %s (%q), got %d %v", c.extra, c.field, c.says, code, m)
		}
	}
	if code, _, raw := releaseCall(t, rig.hs, "GET", "/api/v1/releases", ""); code != 200 || string(raw) != "[]" {
		t.Fatalf("refused releases were recorded: %s", raw)
	}
	// Created on purpose, a new service is accepted.
	code, m = rig.call(t, "POST", "/api/v1/releases?create=true", releaseJSON("payments", "v1", `,"binary":"/bin/true"`))
	if code != 201 || m["status"].(map[string]any)["stable"] != nil {
		t.Fatalf("a new service with create=true: %d %v", code, m)
	}
}

// The first release of a service started with pave run takes the running
// version as stable, with its replica count; traffic and the release then
// agree: a change of weights is refused during the release unless forced,
// a forced change holds until resume, a person's choice after the release
// stands and is the next release's stable version; undo goes back.
func TestFirstReleaseCanaryAndTrafficAgreement(t *testing.T) {
	rig := newReleaseTrafficServer(t)
	code, m := rig.call(t, "POST", "/api/v1/releases", releaseJSON("orders", "v2", `,"binary":"/bin/true"`))
	if code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	st, spec := m["status"].(map[string]any), m["spec"].(map[string]any)
	if st["stable"] != "v1" || spec["replicas"] != 2.0 {
		t.Fatalf("the running v1 is not the stable version with its 2 replicas: stable %v, replicas %v", st["stable"], spec["replicas"])
	}
	rig.reconcile(t)
	if w := rig.weights(t); w["v1"] != 990_000 || w["v2"] != 10_000 {
		t.Fatalf("first step: want v1=99 v2=1, got %s", w)
	}

	// traffic set during the release: 409 naming it.
	code, m = rig.call(t, "PUT", "/api/v1/traffic/orders", `{"weights":{"v1":1000000}}`)
	if code != 409 || !strings.Contains(m["error"].(string), "orders-v2") || !strings.Contains(m["error"].(string), "force") {
		t.Fatalf("traffic set during a release: %d %v", code, m)
	}
	// Forced: the release is paused, the person's weights stay.
	code, m = rig.call(t, "PUT", "/api/v1/traffic/orders", `{"weights":{"v1":1000000},"force":true}`)
	if code != 200 || !strings.Contains(m["message"].(string), "release orders-v2 paused") {
		t.Fatalf("forced traffic set: %d %v", code, m)
	}
	for range 3 {
		rig.reconcile(t)
	}
	if w := rig.weights(t); w["v1"] != 1_000_000 {
		t.Fatalf("the paused release overrode the forced weights: %s", w)
	}
	if _, m = rig.call(t, "GET", "/api/v1/releases/orders-v2", ""); phase(m) != "paused" {
		t.Fatalf("release after a forced traffic set: %v", m)
	}
	// Resumed, the release's weights are back.
	if code, m = rig.call(t, "POST", "/api/v1/releases/orders-v2/resume", "{}"); code != 200 {
		t.Fatalf("resume: %d %v", code, m)
	}
	rig.reconcile(t)
	if w := rig.weights(t); w["v2"] != 10_000 {
		t.Fatalf("after resume: want v2=1, got %s", w)
	}
	if code, m = rig.call(t, "POST", "/api/v1/releases/orders-v2/promote", "{}"); code != 200 || phase(m) != "promoted" {
		t.Fatalf("promote: %d %v", code, m)
	}

	// Undo: back to v1, with the artifact v1 ran.
	code, m = rig.call(t, "POST", "/api/v1/services/orders/undo", "{}")
	if code != 201 || m["spec"].(map[string]any)["version"] != "v1" || m["spec"].(map[string]any)["binary"] == nil || m["status"].(map[string]any)["stable"] != "v2" {
		t.Fatalf("undo after a promotion: %d %v", code, m)
	}
	undo := m["metadata"].(map[string]any)["name"].(string)
	// Undo while that release runs aborts it.
	code, m = rig.call(t, "POST", "/api/v1/services/orders/undo", "{}")
	if code != 200 || phase(m) != "aborted" || m["metadata"].(map[string]any)["name"] != undo {
		t.Fatalf("undo during a release: %d %v", code, m)
	}

	// A person's choice after the release stands, and is the next
	// release's stable version.
	if code, m = rig.call(t, "PUT", "/api/v1/traffic/orders", `{"weights":{"v1":1000000}}`); code != 200 {
		t.Fatalf("traffic set with no release running: %d %v", code, m)
	}
	for range 3 {
		rig.reconcile(t)
	}
	if w := rig.weights(t); w["v1"] != 1_000_000 {
		t.Fatalf("an ended release overrode the person's weights: %s", w)
	}
	code, m = rig.call(t, "POST", "/api/v1/releases", releaseJSON("orders", "v3", `,"binary":"/bin/true"`))
	if code != 201 || m["status"].(map[string]any)["stable"] != "v1" {
		t.Fatalf("the next release after traffic set v1=100: %d %v", code, m)
	}
}

func TestRoutesSetWithNoRoutesIsRefused(t *testing.T) {
	rig := newReleaseTrafficServer(t)
	code, m := rig.call(t, "PUT", "/api/v1/gateway/routes", `{"routes":[{"host":"shop.example","service":"orders"}]}`)
	if code != 200 {
		t.Fatalf("set a route: %d %v", code, m)
	}
	code, m = rig.call(t, "PUT", "/api/v1/gateway/routes", `{"routes":[]}`)
	if code != 400 || m["field"] != "routes" {
		t.Fatalf("empty routes: want 400 naming routes, got %d %v", code, m)
	}
	if _, m = rig.call(t, "GET", "/api/v1/gateway/routes", ""); len(m["routes"].([]any)) != 1 {
		t.Fatalf("the refused empty set deleted routes: %v", m)
	}
	if code, m = rig.call(t, "DELETE", "/api/v1/gateway/routes", "{}"); code != 200 || len(m["routes"].([]any)) != 0 {
		t.Fatalf("delete every route: %d %v", code, m)
	}
}
