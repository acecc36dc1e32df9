package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/state"
)

// RouteKind is the state-store kind of a service's desired weights.
const RouteKind = "route"

// Route states: a route is recorded as pending before it is applied to
// the data plane and marked applied after, so a crash in between is
// visible and the start-up re-apply finishes the job.
const (
	RoutePending = "pending"
	RouteApplied = "applied"
)

// RouteRecord is the stored desired routing of one service.
type RouteRecord struct {
	Service string    `json:"service"`
	Weights Weights   `json:"weights"`
	State   string    `json:"state"`
	Updated time.Time `json:"updated"`
}

// LiveGateway is what the gateway provider needs of the embedded gateway
// (*gateway.Gateway implements it).
type LiveGateway interface {
	SetWeights(service string, w map[string]int64) error
	Versions(service string) []string
	SetRoutes(routes []gateway.Route) error
}

// RoutesKind and RoutesKey address the gateway's explicit host/path-prefix
// routes in the state store (one object: the set is replaced whole).
const (
	RoutesKind = "gateway-routes"
	RoutesKey  = "default"
)

// GatewayRouter is the traffic router of embedded mode. The state store
// holds the truth; the live gateway is made to match it.
type GatewayRouter struct {
	store state.Store
	gw    LiveGateway
	log   *slog.Logger
	mu    sync.Mutex // one change at a time, so intent and apply stay in order
}

var _ Router = (*GatewayRouter)(nil)

// NewGatewayRouter returns the gateway provider after re-applying every
// stored route to gw, so a restarted control plane routes as before. A
// route that cannot be applied is logged and reported in the error; the
// others are applied regardless, and the router is usable either way.
func NewGatewayRouter(ctx context.Context, store state.Store, gw LiveGateway, log *slog.Logger) (*GatewayRouter, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &GatewayRouter{store: store, gw: gw, log: log}
	return r, r.Restore(ctx)
}

// Restore applies every stored route to the live gateway.
func (r *GatewayRouter) Restore(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	objs, err := r.store.List(ctx, RouteKind)
	if err != nil {
		return fmt.Errorf("restore routes: %w", err)
	}
	var errs []error
	var routes []gateway.Route
	if _, err := state.GetJSON(ctx, r.store, RoutesKind, RoutesKey, &routes); err == nil {
		if err := r.gw.SetRoutes(routes); err != nil {
			errs = append(errs, fmt.Errorf("restore gateway routes: %w", err))
		}
	} else if !errors.Is(err, state.ErrNotFound) {
		errs = append(errs, fmt.Errorf("restore gateway routes: %w", err))
	}
	for _, o := range objs {
		var rec RouteRecord
		if err := json.Unmarshal(o.Data, &rec); err != nil {
			errs = append(errs, fmt.Errorf("restore route %s: %w", o.Key, err))
			continue
		}
		if err := r.gw.SetWeights(o.Key, rec.Weights); err != nil {
			r.log.Error("traffic: stored route not applied", "service", o.Key, "err", err)
			errs = append(errs, fmt.Errorf("restore route %s: %w", o.Key, err))
			continue
		}
		if rec.State != RouteApplied {
			rec.State = RouteApplied
			if _, err := state.PutJSON(ctx, r.store, RouteKind, o.Key, rec, o.Version); err != nil {
				errs = append(errs, fmt.Errorf("confirm route %s: %w", o.Key, err))
			}
		}
		r.log.Info("traffic: route restored", "service", o.Key, "weights", rec.Weights.String())
	}
	return errors.Join(errs...)
}

// SetWeights validates w, records it, applies it to the gateway and
// confirms it. On any error the previous routing stays in force, both in
// the store and in the gateway.
func (r *GatewayRouter) SetWeights(ctx context.Context, service string, w Weights) error {
	if err := ValidName("service", service); err != nil {
		return err
	}
	if err := w.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	var prev RouteRecord
	ver, err := state.GetJSON(ctx, r.store, RouteKind, service, &prev)
	switch {
	case errors.Is(err, state.ErrNotFound):
		ver = 0
	case err != nil:
		return fmt.Errorf("read route of %s: %w", service, err)
	}
	known := map[string]bool{}
	for _, v := range r.gw.Versions(service) {
		known[v] = true
	}
	for v := range prev.Weights {
		known[v] = true
	}
	var unknown []string
	for _, v := range w.Versions() {
		if !known[v] {
			unknown = append(unknown, v)
		}
	}
	if len(unknown) > 0 {
		have := make([]string, 0, len(known))
		for v := range known {
			have = append(have, v)
		}
		sort.Strings(have)
		hint := "it has none yet: start one with `pave run " + service + " --version V`"
		if len(have) > 0 {
			hint = "known versions: " + strings.Join(have, ", ")
		}
		return fmt.Errorf("%w: service %s has no version %s (no ready instances and no stored weight); %s",
			ErrInvalid, service, strings.Join(unknown, ", "), hint)
	}

	rec := RouteRecord{Service: service, Weights: w, State: RoutePending, Updated: time.Now().UTC()}
	newVer, err := state.PutJSON(ctx, r.store, RouteKind, service, rec, ver)
	if err != nil {
		return fmt.Errorf("record route of %s: %w", service, err)
	}
	if err := r.gw.SetWeights(service, w); err != nil {
		// Put the previous intent back: the gateway still runs it.
		var rerr error
		if ver == 0 {
			rerr = r.store.Delete(ctx, RouteKind, service, newVer)
		} else {
			_, rerr = state.PutJSON(ctx, r.store, RouteKind, service, prev, newVer)
		}
		return errors.Join(fmt.Errorf("apply route of %s: %w", service, err), rerr)
	}
	rec.State = RouteApplied
	if _, err := state.PutJSON(ctx, r.store, RouteKind, service, rec, newVer); err != nil {
		return fmt.Errorf("confirm route of %s (it is applied): %w", service, err)
	}
	data, _ := json.Marshal(map[string]any{"weights": w, "previous": prev.Weights})
	if _, err := r.store.Append(ctx, state.Event{Kind: RouteKind, Key: service, Type: "weights.set", Data: data}); err != nil {
		r.log.Warn("traffic: audit event not written", "service", service, "err", err)
	}
	return nil
}

// ErrNoWeights reports a service with no stored weights.
var ErrNoWeights = fmt.Errorf("no weights set: %w", state.ErrNotFound)

// Weights returns the stored weights of a service.
func (r *GatewayRouter) Weights(ctx context.Context, service string) (Weights, error) {
	rec, err := r.Route(ctx, service)
	if err != nil {
		return nil, err
	}
	return rec.Weights, nil
}

// Route returns the stored route record of a service.
func (r *GatewayRouter) Route(ctx context.Context, service string) (RouteRecord, error) {
	if err := ValidName("service", service); err != nil {
		return RouteRecord{}, err
	}
	var rec RouteRecord
	if _, err := state.GetJSON(ctx, r.store, RouteKind, service, &rec); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return RouteRecord{}, fmt.Errorf("service %s: %w", service, ErrNoWeights)
		}
		return RouteRecord{}, err
	}
	return rec, nil
}

// SetRoutes replaces the gateway's explicit routes: the gateway checks
// them first (collisions, bad prefixes) with nothing changed on refusal,
// then they are stored, so a restart restores them.
func (r *GatewayRouter) SetRoutes(ctx context.Context, routes []gateway.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var prev []gateway.Route
	ver, err := state.GetJSON(ctx, r.store, RoutesKind, RoutesKey, &prev)
	if errors.Is(err, state.ErrNotFound) {
		ver = 0
	} else if err != nil {
		return fmt.Errorf("read gateway routes: %w", err)
	}
	if routes == nil {
		routes = []gateway.Route{}
	}
	if err := r.gw.SetRoutes(routes); err != nil {
		return err
	}
	if _, err := state.PutJSON(ctx, r.store, RoutesKind, RoutesKey, routes, ver); err != nil {
		// Storing failed: go back to what the store says, which is what a
		// restart would restore.
		return errors.Join(fmt.Errorf("store gateway routes: %w", err), r.gw.SetRoutes(prev))
	}
	return nil
}

// Routes returns the stored explicit routes.
func (r *GatewayRouter) Routes(ctx context.Context) ([]gateway.Route, error) {
	var routes []gateway.Route
	if _, err := state.GetJSON(ctx, r.store, RoutesKind, RoutesKey, &routes); err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	if routes == nil {
		routes = []gateway.Route{}
	}
	return routes, nil
}
