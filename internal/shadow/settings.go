// Package shadow is what a release's shadow step knows of answers: which
// requests may be mirrored (Settings), how two answers differ field by
// field (Compare, with JSONPath-like paths), and the counts a recorder
// keeps of stable and canary answers to the same mirrored requests, with
// the noise learned from two stable answers (Recorder). The embedded
// gateway mirrors and records; the release engine's judges read the
// counts.
package shadow

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Settings are a service's mirror rules, from the shadow section of its
// .pave.yaml and the release spec:
//
//	shadow:
//	  safeRoutes: ["POST /v1/quote"]      # mirrored although POST
//	  ignoreHeaders: [X-Request-Id]
//	  expectedChanges:
//	    - {route: /v1/pay, path: $.fee}
type Settings struct {
	// SafeRoutes are routes whose requests change nothing although their
	// method could ("POST /v1/quote"): they are mirrored too. Only GET
	// and HEAD are mirrored otherwise.
	SafeRoutes []string `json:"safeRoutes,omitempty"`
	// IgnoreHeaders are response headers the comparison leaves out.
	IgnoreHeaders []string `json:"ignoreHeaders,omitempty"`
	// ExpectedChanges are intended differences: accepted, never judged.
	ExpectedChanges []ExpectedChange `json:"expectedChanges,omitempty"`
}

// FieldError names the setting at fault.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

var errSetting = errors.New("invalid shadow setting")

// Validate checks the settings, naming the first field at fault.
func (s Settings) Validate() error {
	for i, r := range s.SafeRoutes {
		if _, _, err := splitRoute(r); err != nil {
			return &FieldError{Field: "safeRoutes[" + itoa(i) + "]", Err: err}
		}
	}
	for i, h := range s.IgnoreHeaders {
		if h == "" || strings.ContainsAny(h, " \t\r\n:") {
			return &FieldError{Field: "ignoreHeaders[" + itoa(i) + "]", Err: fmt.Errorf("%w: %q is not a header name", errSetting, h)}
		}
	}
	for i, x := range s.ExpectedChanges {
		if x.Route != "" && strings.ContainsAny(x.Route, "\t\r\n") {
			return &FieldError{Field: "expectedChanges[" + itoa(i) + "].route", Err: fmt.Errorf("%w: %q is not a route", errSetting, x.Route)}
		}
	}
	_, err := parseExpected(s.ExpectedChanges)
	return err
}

// Merge adds o's rules to s's (the release spec's to the .pave.yaml's).
func (s Settings) Merge(o Settings) Settings {
	return Settings{
		SafeRoutes:      append(append([]string(nil), s.SafeRoutes...), o.SafeRoutes...),
		IgnoreHeaders:   append(append([]string(nil), s.IgnoreHeaders...), o.IgnoreHeaders...),
		ExpectedChanges: append(append([]ExpectedChange(nil), s.ExpectedChanges...), o.ExpectedChanges...),
	}
}

// splitRoute reads "METHOD /path" (a route template's form); a bare path
// means every method.
func splitRoute(r string) (method, path string, err error) {
	method, path, ok := strings.Cut(strings.TrimSpace(r), " ")
	if !ok {
		method, path = "", method
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t") {
		return "", "", fmt.Errorf("%w: route %q: want METHOD /path, e.g. \"POST /v1/quote\"", errSetting, r)
	}
	if method != "" && strings.ToUpper(method) != method {
		return "", "", fmt.Errorf("%w: route %q: the method is upper case, e.g. POST", errSetting, r)
	}
	return method, path, nil
}

// Mirrorable says whether a request of method for path, counted under
// route (the gateway's route key, e.g. "POST /v1/quote" or "/v1"), may be
// mirrored: GET and HEAD always, other methods only on a safe route (its
// template equal to the route key, or its path equal to the request's).
func Mirrorable(method, route, path string, safe []string) bool {
	if method == http.MethodGet || method == http.MethodHead {
		return true
	}
	for _, s := range safe {
		m, p, err := splitRoute(s)
		if err != nil {
			continue
		}
		if m != "" && m != method {
			continue
		}
		if route == s || route == method+" "+p || path == p {
			return true
		}
	}
	return false
}

func itoa(i int) string { return strconv.Itoa(i) }
