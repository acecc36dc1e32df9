package server

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/frontdoor"
)

// The front door: checks every request passes before routing, whatever
// its route. They make the API impossible to drive from a web page of
// another site, even one the developer has open next to the UI:
//
//   - Host must be one of this listener's names, and Origin and
//     Sec-Fetch-Site must not say another site (package frontdoor, shared
//     with pave-telemetry).
//   - A state-changing request must say Content-Type: application/json.
//     An HTML form can only send urlencoded, multipart or text/plain, and
//     fetch with application/json from another origin needs a CORS
//     preflight this server never grants.
//   - Bodies of state-changing requests are bounded (maxBody).

// frontError is a refusal at the front door, with its status.
type frontError struct {
	status int
	reason string
}

// checkFront applies the front-door checks; nil means the request may be
// routed.
func (s *Server) checkFront(r *http.Request) *frontError {
	if !s.hosts.Allows(r.Host) {
		return &frontError{http.StatusMisdirectedRequest, fmt.Sprintf(
			"Host %q is not a name of this server (%s): add it with --http-allowed-hosts if it is yours", r.Host, s.hosts)}
	}
	api := strings.HasPrefix(r.URL.Path, "/api/")
	if !frontdoor.Mutating(r.Method) && !api {
		return nil // the UI's pages and assets; navigation from anywhere is fine
	}
	if err := frontdoor.SameOrigin(r); err != nil {
		return &frontError{http.StatusForbidden, err.Error()}
	}
	if s.readsOnly(r) {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &frontError{http.StatusUnsupportedMediaType, fmt.Sprintf(
			"%s needs Content-Type: application/json (got %q); send a JSON body, {} when there is nothing else", r.Method, ct)}
	}
	return nil
}

// ServeHTTP checks the front door, bounds the body, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.AdmitFront(w, r) {
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	if r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/stream") || r.Header.Get("Accept") == "text/event-stream") {
		// An event stream lives longer than the listener's write timeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	}
	s.mux.ServeHTTP(w, r)
}

// AdmitFront applies the front door (a foreign Host, a cross-site change)
// and answers the refusal itself; it reports whether r may go on. Handlers
// that serve a request elsewhere, as a standby forwarding to the leader
// does, call it first: the forwarded request carries the leader's Host.
func (s *Server) AdmitFront(w http.ResponseWriter, r *http.Request) bool {
	fe := s.checkFront(r)
	if fe == nil {
		return true
	}
	s.log.Warn("api request refused at the front door", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"host", r.Host, "origin", r.Header.Get("Origin"), "status", fe.status, "reason", fe.reason)
	WriteError(w, fe.status, errors.New(fe.reason))
	return false
}
