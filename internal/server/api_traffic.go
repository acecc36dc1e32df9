package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// TrafficLive is the data plane's live view of a service (the embedded
// gateway implements it).
type TrafficLive interface {
	Endpoints(service string) map[string][]string
	Snapshot(service string) stats.Snapshot
	Watch(ctx context.Context, service string, every time.Duration) <-chan stats.Snapshot
}

// TrafficAPI serves /api/v1/traffic: a service's weights, endpoints and
// live statistics, and changes of weights.
type TrafficAPI struct {
	Router traffic.Router
	Live   TrafficLive // nil when the data plane is not embedded
	// Releases, when set, keeps a person's weights and a running release
	// from fighting: a change of weights during a release is refused
	// unless forced, which pauses the release.
	Releases TrafficReleases
}

// TrafficReleases is the release engine as the traffic API sees it
// (release.Engine implements it).
type TrafficReleases interface {
	Unfinished(ctx context.Context, service string) (release.Release, bool, error)
	HandOver(ctx context.Context, service, actor string) (release.Release, bool, error)
}

// Register adds the traffic routes to s.
func (a TrafficAPI) Register(s *Server) {
	s.HandleFunc("GET /api/v1/traffic/{service}", a.show)
	s.HandleFunc("PUT /api/v1/traffic/{service}", a.set)
	s.HandleFunc("GET /api/v1/traffic/{service}/stats", a.stats)
	s.HandleFunc("GET /api/v1/traffic/{service}/stream", a.stream)
	s.HandleFunc("GET /api/v1/gateway/routes", a.listRoutes)
	s.HandleFunc("PUT /api/v1/gateway/routes", a.setRoutes)
	s.HandleFunc("DELETE /api/v1/gateway/routes", a.deleteRoutes)
}

// routeTable is the part of a router that keeps the embedded gateway's
// explicit host/path-prefix routes (traffic.GatewayRouter).
type routeTable interface {
	SetRoutes(ctx context.Context, routes []gateway.Route) error
	Routes(ctx context.Context) ([]gateway.Route, error)
}

// GatewayRoutes is the body of PUT /api/v1/gateway/routes and the answer
// of both routes endpoints; the set is replaced whole.
type GatewayRoutes struct {
	Routes []gateway.Route `json:"routes"`
}

func (a TrafficAPI) routeTable(w http.ResponseWriter) (routeTable, bool) {
	rt, ok := a.Router.(routeTable)
	if !ok {
		WriteError(w, http.StatusNotImplemented, errors.New("explicit routes exist only with the embedded gateway"))
	}
	return rt, ok
}

func (a TrafficAPI) listRoutes(w http.ResponseWriter, r *http.Request) {
	rt, ok := a.routeTable(w)
	if !ok {
		return
	}
	routes, err := rt.Routes(r.Context())
	if err != nil {
		writeTrafficError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, GatewayRoutes{Routes: routes})
}

func (a TrafficAPI) setRoutes(w http.ResponseWriter, r *http.Request) {
	rt, ok := a.routeTable(w)
	if !ok {
		return
	}
	var req GatewayRoutes
	if err := ReadJSON(r, &req); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	if len(req.Routes) == 0 {
		// An empty set would delete every route; that takes DELETE.
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "routes", Err: errors.New("no routes given; the set is replaced whole, so give every route to keep (to delete them all: DELETE /api/v1/gateway/routes)")})
		return
	}
	if err := rt.SetRoutes(r.Context(), req.Routes); err != nil {
		if errors.Is(err, gateway.ErrInvalid) {
			err = &FieldError{Field: "routes", Err: err}
		}
		writeTrafficError(w, err)
		return
	}
	a.listRoutes(w, r)
}

// deleteRoutes removes every explicit route.
func (a TrafficAPI) deleteRoutes(w http.ResponseWriter, r *http.Request) {
	rt, ok := a.routeTable(w)
	if !ok {
		return
	}
	if err := rt.SetRoutes(r.Context(), nil); err != nil {
		writeTrafficError(w, err)
		return
	}
	a.listRoutes(w, r)
}

// TrafficSetRequest sets a service's weights in parts per million
// (1,000,000 = 100%); the CLI converts percents.
type TrafficSetRequest struct {
	Weights traffic.Weights `json:"weights"`
	// Force sets the weights while a release of the service runs: the
	// release is paused and applies no weights until it is resumed.
	Force bool `json:"force,omitempty"`
}

// TrafficView is a service's routing as the control plane sees it.
type TrafficView struct {
	Service string `json:"service"`
	// Weights in parts per million; nil when none was ever set (the
	// gateway then splits evenly between versions with ready instances).
	Weights traffic.Weights `json:"weights"`
	// Percent is Weights as percent strings, e.g. "99.99".
	Percent   map[string]string   `json:"percent,omitempty"`
	State     string              `json:"state,omitempty"`
	Updated   *time.Time          `json:"updated,omitempty"`
	Endpoints map[string][]string `json:"endpoints,omitempty"`
	Stats     stats.Snapshot      `json:"stats,omitempty"`
	// Message says what a change did besides the weights (a release
	// paused by force).
	Message string `json:"message,omitempty"`
}

func (a TrafficAPI) view(ctx context.Context, service string) (TrafficView, error) {
	if err := traffic.ValidName("service", service); err != nil {
		return TrafficView{}, &FieldError{Field: "service", Err: err}
	}
	v := TrafficView{Service: service}
	if gr, ok := a.Router.(interface {
		Route(context.Context, string) (traffic.RouteRecord, error)
	}); ok {
		rec, err := gr.Route(ctx, service)
		if err == nil {
			v.Weights, v.State, v.Updated = rec.Weights, rec.State, &rec.Updated
		} else if !errors.Is(err, state.ErrNotFound) {
			return v, err
		}
	} else {
		w, err := a.Router.Weights(ctx, service)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return v, err
		}
		v.Weights = w
	}
	if v.Weights != nil {
		v.Percent = map[string]string{}
		for ver, p := range v.Weights {
			v.Percent[ver] = traffic.FormatPercent(p)
		}
	}
	if a.Live != nil {
		v.Endpoints = a.Live.Endpoints(service)
		v.Stats = a.Live.Snapshot(service)
	}
	return v, nil
}

func (a TrafficAPI) show(w http.ResponseWriter, r *http.Request) {
	v, err := a.view(r.Context(), r.PathValue("service"))
	if err != nil {
		writeTrafficError(w, err)
		return
	}
	if v.Weights == nil && len(v.Endpoints) == 0 {
		WriteError(w, http.StatusNotFound, fmt.Errorf("service %s has no weights and no ready instances", v.Service))
		return
	}
	WriteJSON(w, http.StatusOK, v)
}

func (a TrafficAPI) set(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("service")
	var req TrafficSetRequest
	if err := ReadJSON(r, &req); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	if err := traffic.ValidName("service", service); err != nil {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "service", Err: err})
		return
	}
	if err := req.Weights.Validate(); err != nil {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "weights", Err: err})
		return
	}
	message, ok := a.holdRelease(w, r, service, req.Force)
	if !ok {
		return
	}
	if err := a.Router.SetWeights(r.Context(), service, req.Weights); err != nil {
		if errors.Is(err, traffic.ErrInvalid) {
			err = &FieldError{Field: "weights", Err: err}
		}
		if message != "" {
			err = fmt.Errorf("%s; but the weights were not set: %w", message, err)
		}
		writeTrafficError(w, err)
		return
	}
	v, err := a.view(r.Context(), service)
	if err != nil {
		writeTrafficError(w, err)
		return
	}
	v.Message = message
	WriteJSON(w, http.StatusOK, v)
}

// holdRelease refuses a change of weights while a release of service runs
// (409 naming it), unless force: then the release is paused for the
// person and the message says so. ok is false when an answer was written.
func (a TrafficAPI) holdRelease(w http.ResponseWriter, r *http.Request, service string, force bool) (message string, ok bool) {
	if a.Releases == nil {
		return "", true
	}
	cur, found, err := a.Releases.Unfinished(r.Context(), service)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return "", false
	}
	if !found {
		return "", true
	}
	if !force {
		WriteError(w, http.StatusConflict, fmt.Errorf("release %s of %s@%s is %s (%s) and sets this service's traffic itself; wait for it, pause or abort it (pave release abort %s), or force (pave traffic set --force, \"force\": true), which pauses it and keeps your weights until pave release resume %s",
			cur.Metadata.Name, service, cur.Spec.Version, cur.Status.Phase.Words(), cur.Status.Message, cur.Metadata.Name, cur.Metadata.Name))
		return "", false
	}
	p := PrincipalFrom(r.Context())
	actor := p.Name
	if actor == "" {
		actor = p.TokenID
	}
	held, _, err := a.Releases.HandOver(r.Context(), service, actor)
	if err != nil {
		writeReleaseError(w, err)
		return "", false
	}
	return fmt.Sprintf("release %s paused: its weights stay off until pave release resume %s", held.Metadata.Name, held.Metadata.Name), true
}

func writeTrafficError(w http.ResponseWriter, err error) {
	var fe *FieldError
	switch {
	case errors.Is(err, traffic.ErrInvalid), errors.As(err, &fe):
		WriteError(w, http.StatusBadRequest, err)
	case errors.Is(err, state.ErrNotFound):
		WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, state.ErrConflict):
		WriteError(w, http.StatusConflict, err)
	default:
		WriteError(w, http.StatusInternalServerError, err)
	}
}

func (a TrafficAPI) stats(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("service")
	if err := traffic.ValidName("service", service); err != nil {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "service", Err: err})
		return
	}
	if a.Live == nil {
		WriteError(w, http.StatusNotImplemented, errors.New("live statistics come from the embedded gateway, which is not running"))
		return
	}
	WriteJSON(w, http.StatusOK, a.Live.Snapshot(service))
}

// stream pushes the service's cumulative statistics as server-sent events
// ("event: stats"), every ?every= (default 1s, at least 50ms).
func (a TrafficAPI) stream(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("service")
	if err := traffic.ValidName("service", service); err != nil {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "service", Err: err})
		return
	}
	if a.Live == nil {
		WriteError(w, http.StatusNotImplemented, errors.New("live statistics come from the embedded gateway, which is not running"))
		return
	}
	every := time.Second
	if s := r.URL.Query().Get("every"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 50*time.Millisecond {
			WriteError(w, http.StatusBadRequest, &FieldError{Field: "every", Err: fmt.Errorf("%q: want a duration of at least 50ms, e.g. 500ms", s)})
			return
		}
		every = d
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		WriteError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	for snap := range a.Live.Watch(r.Context(), service, every) {
		b, err := json.Marshal(snap)
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: stats\ndata: %s\n\n", b); err != nil {
			return
		}
		flusher.Flush()
	}
}
