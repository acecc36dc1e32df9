package server

import (
	"net/http"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/frontdoor"
)

// MetricsAPI mounts the metrics store's Prometheus-compatible routes
// (internal/metrics): /api/v1/query, query_range, series, labels,
// label/NAME/values, metadata, targets and /federate. They are reads
// (role viewer; open on loopback like every read).
type MetricsAPI struct {
	// Handler serves every route below (metrics.Store.API).
	Handler http.Handler
	// Routes are the paths, each with whether Prometheus accepts a form
	// POST on it (metrics.APIPaths).
	Routes []MetricsRoute
}

// MetricsRoute is one path of the metrics API.
type MetricsRoute struct {
	Path string
	// Post: Prometheus (and Grafana by default) sends long queries as a
	// urlencoded form POST. Such a POST reads: the front door lets it
	// through without JSON and the guard treats it as a read, still
	// under the Host and Origin checks.
	Post bool
}

// Register adds the routes.
func (a MetricsAPI) Register(s *Server) {
	for _, r := range a.Routes {
		s.Handle("GET "+r.Path, a.Handler)
		if r.Post {
			s.Handle("POST "+r.Path, a.Handler, Require(auth.RoleViewer))
			s.readPOST.Store(r.Path, true)
		}
	}
}

// readsOnly reports whether a request cannot change anything: a read
// method, or a POST to a path registered as a read (the metrics query
// API's form POST).
func (s *Server) readsOnly(r *http.Request) bool {
	if !frontdoor.Mutating(r.Method) {
		return true
	}
	_, ok := s.readPOST.Load(r.URL.Path)
	return r.Method == http.MethodPost && ok
}
