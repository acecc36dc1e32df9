package server

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The front door: checks every request passes before routing, whatever
// its route. They make the API impossible to drive from a web page of
// another site, even one the developer has open next to the UI:
//
//   - Host must be one of this listener's names, so a DNS-rebinding page
//     (evil.example resolving to 127.0.0.1) is refused before any handler
//     reads or answers anything.
//   - A state-changing request must say Content-Type: application/json.
//     An HTML form can only send urlencoded, multipart or text/plain, and
//     fetch with application/json from another origin needs a CORS
//     preflight this server never grants.
//   - Origin and Sec-Fetch-Site, which browsers set and pages cannot
//     forge, must not say another site.
//   - Bodies of state-changing requests are bounded (maxBody).

// loopbackNames are the names a listener always answers to.
var loopbackNames = []string{"localhost", "127.0.0.1", "::1"}

// hostPolicy decides which Host headers the listener accepts.
type hostPolicy struct {
	any   bool
	names map[string]bool
}

func newHostPolicy(extra []string) hostPolicy {
	p := hostPolicy{names: map[string]bool{}}
	for _, n := range append(append([]string{}, loopbackNames...), extra...) {
		n = strings.ToLower(strings.Trim(strings.TrimSpace(n), "[]"))
		if n == "*" {
			p.any = true
		}
		if n != "" {
			p.names[n] = true
		}
	}
	return p
}

func (p hostPolicy) allows(hostport string) bool {
	if p.any {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	return host != "" && p.names[host]
}

func (p hostPolicy) list() string {
	out := make([]string, 0, len(p.names))
	for _, n := range loopbackNames {
		out = append(out, n)
	}
	for n := range p.names {
		if n != "localhost" && n != "127.0.0.1" && n != "::1" {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// mutating reports whether a method may change state.
func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// frontError is a refusal at the front door, with its status.
type frontError struct {
	status int
	reason string
}

// checkFront applies the front-door checks; nil means the request may be
// routed.
func (s *Server) checkFront(r *http.Request) *frontError {
	if !s.hosts.allows(r.Host) {
		return &frontError{http.StatusMisdirectedRequest, fmt.Sprintf(
			"Host %q is not a name of this server (%s): add it with --http-allowed-hosts if it is yours", r.Host, s.hosts.list())}
	}
	api := strings.HasPrefix(r.URL.Path, "/api/")
	if !mutating(r.Method) && !api {
		return nil // the UI's pages and assets; navigation from anywhere is fine
	}
	if err := sameOrigin(r); err != nil {
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

// sameOrigin refuses requests a browser marks as sent by a page of
// another origin.
func sameOrigin(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("cross-origin request refused (Sec-Fetch-Site: %s): the API answers only its own UI and non-browser clients", site)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("cross-origin request refused (Origin: %q)", origin)
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("cross-origin request refused: Origin %s is not this server (%s)", origin, r.Host)
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
