package traffic

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/state"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *state.SQLite {
	t.Helper()
	s, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGatewayRouterPersistsAndRestores(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := openStore(t, dir)
	gw := gateway.New(gateway.Options{Log: quietLog()})
	gw.SetEndpoints("orders", "v1", []string{"127.0.0.1:9001"})
	gw.SetEndpoints("orders", "v2", []string{"127.0.0.1:9002"})
	r, err := NewGatewayRouter(ctx, store, gw, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Weights(ctx, "orders"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("weights before any set: %v, want not found", err)
	}
	want := Weights{"v1": 999_900, "v2": 100}
	if err := r.SetWeights(ctx, "orders", want); err != nil {
		t.Fatal(err)
	}
	if got := gw.Weights("orders"); got["v2"] != 100 || got["v1"] != 999_900 {
		t.Fatalf("live gateway has %v, want %v", got, want)
	}
	rec, err := r.Route(ctx, "orders")
	if err != nil || rec.State != RouteApplied || rec.Weights["v2"] != 100 {
		t.Fatalf("stored route %+v, %v; want applied with v2=100", rec, err)
	}

	// Bad input: nothing changes, in the store or the gateway.
	for _, bad := range []Weights{
		{"v1": 990_000, "v3": 10_000},
		{"v1": 990_000, "v2": 20_000},
		{"v1": 1_010_000, "v2": -10_000},
	} {
		if err := r.SetWeights(ctx, "orders", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetWeights(%v) = %v, want ErrInvalid", bad, err)
		}
	}
	err = r.SetWeights(ctx, "orders", Weights{"v1": 990_000, "v3": 10_000})
	if err == nil || !strings.Contains(err.Error(), "no version v3") || !strings.Contains(err.Error(), "known versions: v1, v2") {
		t.Errorf("unknown version error %q does not say what is known", err)
	}
	if got, _ := r.Weights(ctx, "orders"); got["v2"] != 100 {
		t.Fatalf("stored weights after refusals: %v", got)
	}
	if got := gw.Weights("orders"); got["v2"] != 100 {
		t.Fatalf("live weights after refusals: %v", got)
	}
	store.Close()

	// Restart: a new gateway with no weights, and instances not yet ready
	// again; the stored weights come back.
	store2 := openStore(t, dir)
	defer store2.Close()
	gw2 := gateway.New(gateway.Options{Log: quietLog()})
	if _, err := NewGatewayRouter(ctx, store2, gw2, quietLog()); err != nil {
		t.Fatal(err)
	}
	if got := gw2.Weights("orders"); got["v2"] != 100 || got["v1"] != 999_900 {
		t.Fatalf("after restart the gateway has %v, want %v", got, want)
	}
	events, err := store2.Events(ctx, RouteKind, "orders", 0, 10)
	if err != nil || len(events) != 1 || events[0].Type != "weights.set" {
		t.Fatalf("audit events %v, %v; want one weights.set", events, err)
	}
}

// failingGateway refuses every change, as a gateway that rejects input
// would; it stands in for the real one only to reach the rollback path.
type failingGateway struct{}

func (failingGateway) SetWeights(string, map[string]int64) error { return errors.New("refused") }
func (failingGateway) Versions(string) []string                  { return []string{"v1", "v2"} }
func (failingGateway) SetRoutes([]gateway.Route) error           { return errors.New("refused") }

func TestGatewayRouterRollsBackWhenApplyFails(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	defer store.Close()
	prev := RouteRecord{Service: "orders", Weights: Weights{"v1": 1_000_000}, State: RouteApplied}
	if _, err := state.PutJSON(ctx, store, RouteKind, "orders", prev, 0); err != nil {
		t.Fatal(err)
	}
	r := &GatewayRouter{store: store, gw: failingGateway{}, log: quietLog()}
	if err := r.SetWeights(ctx, "orders", Weights{"v1": 500_000, "v2": 500_000}); err == nil {
		t.Fatal("SetWeights succeeded though the gateway refused")
	}
	got, err := r.Route(ctx, "orders")
	if err != nil || got.Weights["v1"] != 1_000_000 || len(got.Weights) != 1 || got.State != RouteApplied {
		t.Fatalf("after a failed apply the store holds %+v, %v; want the previous route", got, err)
	}
	if err := r.SetWeights(ctx, "payments", Weights{"v1": 1_000_000}); err == nil {
		t.Fatal("SetWeights succeeded though the gateway refused")
	}
	if _, err := r.Route(ctx, "payments"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a refused first route was left in the store: %v", err)
	}
}

func TestGatewayRoutesPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := openStore(t, dir)
	gw := gateway.New(gateway.Options{Log: quietLog()})
	r, err := NewGatewayRouter(ctx, store, gw, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	good := []gateway.Route{{Host: "api.example", PathPrefix: "/orders", Service: "orders"}}
	if err := r.SetRoutes(ctx, good); err != nil {
		t.Fatal(err)
	}
	err = r.SetRoutes(ctx, []gateway.Route{{PathPrefix: "/a", Service: "a"}, {PathPrefix: "/a", Service: "b"}})
	if !errors.Is(err, gateway.ErrInvalid) {
		t.Fatalf("colliding routes: %v", err)
	}
	if got, _ := r.Routes(ctx); len(got) != 1 || got[0].Service != "orders" {
		t.Fatalf("stored routes after a refusal: %v", got)
	}
	store.Close()
	store2 := openStore(t, dir)
	defer store2.Close()
	gw2 := gateway.New(gateway.Options{Log: quietLog()})
	if _, err := NewGatewayRouter(ctx, store2, gw2, quietLog()); err != nil {
		t.Fatal(err)
	}
	if got := gw2.Routes(); len(got) != 1 || got[0].PathPrefix != "/orders" {
		t.Fatalf("routes after restart: %v", got)
	}
}
