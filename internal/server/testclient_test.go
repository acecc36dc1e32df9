package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/frontdoor"
)

// asClient is how a well-behaved API client calls: a bearer token, and
// Content-Type: application/json on every state-changing request.
type asClient struct {
	base  http.RoundTripper
	token string
}

func (a asClient) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.Header.Get("Authorization") == "" && a.token != "" {
		r.Header.Set("Authorization", "Bearer "+a.token)
	}
	if frontdoor.Mutating(r.Method) && r.Header.Get("Content-Type") == "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return a.base.RoundTrip(r)
}

// authorizeClient makes ts.Client() call as an admin: tests of what
// handlers do (not of who may call them) use it.
func authorizeClient(t *testing.T, ts *httptest.Server, toks auth.Tokens) string {
	t.Helper()
	_, secret, err := toks.Create(context.Background(), "test-admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	c := ts.Client()
	c.Transport = asClient{base: c.Transport, token: secret}
	return secret
}

// allRoots lets a test server accept any local path: for tests of other
// checks than the run roots.
func allRoots(t *testing.T) RunRoots {
	t.Helper()
	rr, err := NewRunRoots([]string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
