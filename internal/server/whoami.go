package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/pave-platform/pave/internal/frontdoor"
)

// Whoami is the caller as the API sees it, and, for each route asked
// about, whether the caller may call it. The web UI shows a button only
// when its route is allowed; the route's guard stays the one authority
// (a hidden button is a convenience, never a control).
type Whoami struct {
	Name      string `json:"name"`
	TokenID   string `json:"tokenId,omitempty"`
	Role      string `json:"role"`
	Anonymous bool   `json:"anonymous,omitempty"`
	// Routes answers ?route=METHOD PATTERN, e.g.
	// "POST /api/v1/clusters/{name}/drain", as registered.
	Routes map[string]RouteAccess `json:"routes,omitempty"`
}

// RouteAccess says whether the caller may call a route, and the role it
// needs.
type RouteAccess struct {
	Allowed bool   `json:"allowed"`
	Needs   string `json:"needs,omitempty"`
}

// whoami serves GET /api/v1/whoami[?route=METHOD PATTERN...]. The answer
// comes from the same table the guard enforces (routeOpts recorded by
// Handle), so the UI repeats no rule of its own.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	p := PrincipalFrom(r.Context())
	out := Whoami{Name: p.Name, TokenID: p.TokenID, Role: p.Role.String(), Anonymous: p.TokenID == ""}
	for _, route := range r.URL.Query()["route"] {
		v, ok := s.routes.Load(route)
		if !ok {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("route %q is not one of the API's: give it as registered, METHOD and pattern, e.g. %q", route, "POST /api/v1/clusters/{name}/drain"))
			return
		}
		o := v.(routeOpts)
		if o.public {
			out.routes()[route] = RouteAccess{Allowed: true}
			continue
		}
		method, _, _ := strings.Cut(route, " ")
		allowed := p.Role >= o.role
		if out.Anonymous && frontdoor.Mutating(method) {
			// Without a token nothing changes anything (see authenticate).
			allowed = false
		}
		out.routes()[route] = RouteAccess{Allowed: allowed, Needs: o.role.String()}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (w *Whoami) routes() map[string]RouteAccess {
	if w.Routes == nil {
		w.Routes = map[string]RouteAccess{}
	}
	return w.Routes
}
