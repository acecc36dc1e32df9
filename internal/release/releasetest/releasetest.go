// Package releasetest provides in-memory stand-ins for the release engine's
// seams, for unit tests of the API, the CLI and the UI that must not start a
// data plane (as net/http/httptest does for handlers). Integration tests use
// the real gateway and runtime instead.
package releasetest

import (
	"context"
	"maps"
	"sync"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/traffic"
)

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
