// Package releasetest provides in-memory stand-ins for the release engine's
// seams, for unit tests of the API, the CLI and the UI that must not start a
// data plane (as net/http/httptest does for handlers). Integration tests use
// the real gateway and runtime instead.
package releasetest

import (
	"context"
	"maps"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// Rig is a real release engine on a fresh SQLite store, with the router
// and target in memory and service "shop" stable at v1.
type Rig struct {
	Store  *state.SQLite
	Router *Router
	Engine *release.Engine
}

// NewRig builds a Rig; metrics, when not nil, makes the engine's metric
// source from the rig's router (so simulated traffic can follow the
// weights), and otherwise the engine sees no traffic at all.
func NewRig(t testing.TB, metrics func(*Router) release.MetricSource) *Rig {
	t.Helper()
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	router := NewRouter(map[string]string{"shop": "v1"})
	var src release.MetricSource = release.MetricsFunc(func(context.Context, string) (stats.Snapshot, error) {
		return stats.Snapshot{}, nil
	})
	if metrics != nil {
		src = metrics(router)
	}
	return &Rig{Store: st, Router: router, Engine: release.NewEngine(st, router, ReadyTarget{}, src)}
}

// Router keeps weights in memory.
type Router struct {
	mu sync.Mutex
	w  map[string]traffic.Weights
}

// NewRouter returns a Router where each named service starts with all of
// its traffic on the given stable version.
func NewRouter(stable map[string]string) *Router {
	r := &Router{w: map[string]traffic.Weights{}}
	for svc, v := range stable {
		r.w[svc] = traffic.Weights{v: traffic.Total}
	}
	return r
}

func (r *Router) SetWeights(_ context.Context, service string, w traffic.Weights) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w[service] = maps.Clone(w)
	return nil
}

func (r *Router) Weights(_ context.Context, service string) (traffic.Weights, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.w[service]), nil
}

// ReadyTarget reports every version fully ready at once.
type ReadyTarget struct{}

var _ release.Target = ReadyTarget{}

func (ReadyTarget) Deploy(context.Context, release.Deployment) error { return nil }
func (ReadyTarget) Remove(context.Context, string, string) error     { return nil }
func (ReadyTarget) Status(context.Context, string, string) (bool, int, int, error) {
	return true, 1, 1, nil
}
