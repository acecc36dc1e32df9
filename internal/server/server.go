// Package server is the control plane's HTTP front: the JSON API under
// /api/v1, the web UI, health, and access control. Each API area lives in a
// file of its own (api_*.go) as a small type built from its domain package
// and registered with Register; only this package and cmd/pave wire domain
// providers together.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/frontdoor"
)

// Server routes API requests after checking the caller's role.
type Server struct {
	mux      *http.ServeMux
	tokens   auth.Tokens
	open     bool
	hosts    frontdoor.Hosts
	runRoots RunRoots
	log      *slog.Logger
	ready    atomic.Bool
	readPOST sync.Map // path -> true: POSTs there only read (api_metrics.go)
	routes   sync.Map // pattern -> routeOpts, for GET /api/v1/whoami (whoami.go)
}

// Options configure a Server.
type Options struct {
	Tokens auth.Tokens
	// Open lets requests without a token read (role viewer). Nothing
	// without a token may change anything, open or not. cmd/pave opens
	// reads only for an API on loopback.
	Open bool
	// AllowedHosts are the Host names accepted besides localhost,
	// 127.0.0.1 and [::1] ("*": any, for a server behind a proxy that
	// checks Host itself).
	AllowedHosts []string
	// RunRoots are the directories under which spec.source and
	// spec.binary may point (see RunRoots); none refuses every path.
	RunRoots RunRoots
	// LocalTokenFile is the admin token file of this control plane; its
	// path (never its content) is told to clients on loopback so the CLI
	// on this machine finds it (GET /api/v1/local-credential).
	LocalTokenFile string
	Log            *slog.Logger
}

// New returns a Server with /healthz and the token API registered.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Server{mux: http.NewServeMux(), tokens: o.Tokens, open: o.Open, hosts: frontdoor.NewHosts(o.AllowedHosts), runRoots: o.RunRoots, log: o.Log}
	s.Handle("GET /healthz", http.HandlerFunc(s.healthz), Public())
	s.Handle("GET /api/v1/local-credential", localCredential(o.LocalTokenFile), Public())
	tokenAPI{tokens: o.Tokens}.Register(s)
	s.HandleFunc("GET /api/v1/whoami", s.whoami)
	return s
}

// SetReady flips /healthz to 200 once every component has started.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		WriteError(w, http.StatusServiceUnavailable, errors.New("starting"))
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type routeOpts struct {
	role   auth.Role
	public bool
}

// RouteOption changes who may call a route.
type RouteOption func(*routeOpts)

// Public lets anyone call the route (health, static UI assets).
func Public() RouteOption { return func(o *routeOpts) { o.public = true } }

// Require sets the minimum role. By default reads (GET, HEAD) need viewer
// and everything else needs deployer.
func Require(r auth.Role) RouteOption { return func(o *routeOpts) { o.role = r } }

// Handle registers h for a ServeMux pattern behind access control.
func (s *Server) Handle(pattern string, h http.Handler, opts ...RouteOption) {
	o := routeOpts{role: auth.RoleDeployer}
	method, _, _ := strings.Cut(pattern, " ")
	if method == http.MethodGet || method == http.MethodHead {
		o.role = auth.RoleViewer
	}
	for _, f := range opts {
		f(&o)
	}
	s.routes.Store(pattern, o)
	if o.public {
		s.mux.Handle(pattern, h)
		return
	}
	s.mux.Handle(pattern, s.guard(o.role, h))
}

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request), opts ...RouteOption) {
	s.Handle(pattern, http.HandlerFunc(h), opts...)
}

type principalKey struct{}

// Principal is who made a request.
type Principal struct {
	TokenID string
	Name    string
	Role    auth.Role
}

// PrincipalFrom returns the caller of a request, for audit records.
func PrincipalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

func (s *Server) guard(need auth.Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, reason := s.authenticate(r)
		if status == 0 && p.Role < need {
			status, reason = http.StatusForbidden, "role "+p.Role.String()+" may not do this; needs "+need.String()
		}
		if status != 0 {
			// Never log the token itself: only its id when it parsed.
			s.log.Warn("api access denied", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
				"status", status, "reason", reason, "token_id", p.TokenID)
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pave"`)
			}
			WriteError(w, status, errors.New(reason))
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		h.ServeHTTP(w, r.WithContext(context.WithValue(ctx, runRootsKey{}, s.runRoots)))
	})
}

func (s *Server) authenticate(r *http.Request) (Principal, int, string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if s.open && s.readsOnly(r) {
			return Principal{Name: "anonymous", Role: auth.RoleViewer}, 0, ""
		}
		return Principal{}, http.StatusUnauthorized, "missing bearer token: on the control plane's machine the CLI reads the admin token `pave up` wrote to DATA_DIR/admin.token; " +
			"elsewhere create one with `pave token create --role viewer|deployer|admin` and pass it with --token or PAVE_TOKEN"
	}
	plain, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return Principal{}, http.StatusUnauthorized, "Authorization header must be 'Bearer <token>'"
	}
	tok, role, err := s.tokens.Verify(r.Context(), strings.TrimSpace(plain))
	if err != nil {
		id := ""
		if rest, ok := strings.CutPrefix(plain, "pave_"); ok {
			id, _, _ = strings.Cut(rest, "_")
			if len(id) > 32 {
				id = id[:32]
			}
		}
		return Principal{TokenID: id}, http.StatusUnauthorized, "invalid token"
	}
	return Principal{TokenID: tok.ID, Name: tok.Name, Role: role}, 0, ""
}
