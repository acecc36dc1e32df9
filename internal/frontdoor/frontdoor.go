// Package frontdoor holds the checks every Pave HTTP listener applies
// before routing, so that no web page of another site, and no
// DNS-rebinding host, can drive or read it from a browser:
//
//   - Host must be one of the listener's names: a page of evil.example
//     whose name was made to resolve to 127.0.0.1 sends Host: evil.example
//     and is refused before any handler reads or answers anything.
//   - Origin and Sec-Fetch-Site, which browsers set and pages cannot
//     forge, must not name another site.
//
// The control plane's API (internal/server) and pave-telemetry share them.
package frontdoor

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// loopbackNames are the names a listener always answers to.
var loopbackNames = []string{"localhost", "127.0.0.1", "::1"}

// Hosts decides which Host headers a listener accepts: the loopback
// names, and the extra names its operator allowed ("*" allows any).
type Hosts struct {
	any   bool
	names map[string]bool
}

// NewHosts is the loopback names plus extra.
func NewHosts(extra []string) Hosts {
	p := Hosts{names: map[string]bool{}}
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

// Allows reports whether hostport (a Host header) names this listener.
func (p Hosts) Allows(hostport string) bool {
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

// String lists the accepted names, loopback first, for error messages.
func (p Hosts) String() string {
	out := append([]string{}, loopbackNames...)
	for n := range p.names {
		if n != "localhost" && n != "127.0.0.1" && n != "::1" {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// Mutating reports whether a method may change state.
func Mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// SameOrigin refuses requests a browser marks as sent by a page of
// another origin; clients that are not browsers send neither header.
func SameOrigin(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("cross-origin request refused (Sec-Fetch-Site: %s): only non-browser clients and this server's own pages may call it", site)
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

// Guard serves h only to requests that name one of hosts in Host and
// that no browser marks as sent by another site: 421 and 403 otherwise,
// logged. setting names the option that adds a Host name, for the error.
// It suits listeners with no pages of their own (the OTLP intake,
// pave-telemetry); the API's door adds rules for its UI.
func Guard(hosts Hosts, setting string, log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, reason := 0, ""
		if !hosts.Allows(r.Host) {
			status, reason = http.StatusMisdirectedRequest, fmt.Sprintf("Host %q is not a name of this server (%s): add it with %s if it is yours", r.Host, hosts, setting)
		} else if err := SameOrigin(r); err != nil {
			status, reason = http.StatusForbidden, err.Error()
		}
		if status != 0 {
			log.Warn("request refused at the front door", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
				"host", r.Host, "origin", r.Header.Get("Origin"), "reason", reason)
			http.Error(w, reason, status)
			return
		}
		h.ServeHTTP(w, r)
	})
}
