package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/pave-platform/pave/internal/servicemap"
	"github.com/pave-platform/pave/internal/telemetry"
)

// ServiceMapAPI serves GET /api/v1/servicemap?since=15m (or from=&to=):
// caller → service edges from the access logs, with a canary version as
// its own node while its release runs.
type ServiceMapAPI struct {
	Store telemetry.Store
	// Canaries lists the versions in running releases; nil for none.
	Canaries func(ctx context.Context) ([]servicemap.Canary, error)
	Now      func() time.Time
}

// Register adds the route to s.
func (a ServiceMapAPI) Register(s *Server) {
	s.HandleFunc("GET /api/v1/servicemap", a.get)
}

func (a ServiceMapAPI) get(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	in := r.URL.Query()
	window := url.Values{}
	for k, v := range in {
		switch k {
		case "since", "from", "to":
			window[k] = v
		default:
			WriteError(w, http.StatusBadRequest, &FieldError{Field: k, Err: errors.New("unknown parameter; known: since, from, to")})
			return
		}
	}
	if len(window) == 0 {
		window.Set("since", "15m")
	}
	q, err := telemetry.ParseQuery(window, now)
	if err != nil {
		queryFail(w, err)
		return
	}
	if q.To.IsZero() {
		q.To = now
	}
	var canaries []servicemap.Canary
	if a.Canaries != nil {
		if canaries, err = a.Canaries(r.Context()); err != nil {
			WriteError(w, http.StatusInternalServerError, err)
			return
		}
	}
	g, err := servicemap.Build(r.Context(), a.Store, q.From, q.To, canaries)
	if err != nil {
		queryFail(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, g)
}
