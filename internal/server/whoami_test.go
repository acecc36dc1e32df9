package server

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
)

// TestWhoamiAgreesWithTheGuard checks that what whoami says a caller may
// do is what the guard then lets it do, role by role.
func TestWhoamiAgreesWithTheGuard(t *testing.T) {
	s, toks, _ := newServer(t, false)
	ctx := context.Background()
	_, viewer, _ := toks.Create(ctx, "vera", auth.RoleViewer)
	_, deployer, _ := toks.Create(ctx, "dan", auth.RoleDeployer)
	_, admin, _ := toks.Create(ctx, "ada", auth.RoleAdmin)

	routes := []struct{ route, method, path string }{
		{"GET /api/v1/things", "GET", "/api/v1/things"},
		{"POST /api/v1/things", "POST", "/api/v1/things"},
		{"GET /api/v1/tokens", "GET", "/api/v1/tokens"},
	}
	q := url.Values{}
	for _, r := range routes {
		q.Add("route", r.route)
	}
	for _, c := range []struct {
		token, name, role string
		allowed           []bool
	}{
		{viewer, "vera", "viewer", []bool{true, false, false}},
		{deployer, "dan", "deployer", []bool{true, true, false}},
		{admin, "ada", "admin", []bool{true, true, true}},
	} {
		rec := call(s, "GET", "/api/v1/whoami?"+q.Encode(), c.token, nil)
		if rec.Code != 200 {
			t.Fatalf("%s: whoami %d %s", c.name, rec.Code, rec.Body)
		}
		var who Whoami
		if err := json.Unmarshal(rec.Body.Bytes(), &who); err != nil {
			t.Fatal(err)
		}
		if who.Name != c.name || who.Role != c.role || who.Anonymous || who.TokenID == "" {
			t.Errorf("%s: whoami %+v", c.name, who)
		}
		for i, r := range routes {
			got := who.Routes[r.route]
			if got.Allowed != c.allowed[i] {
				t.Errorf("%s: %s allowed=%v, want %v", c.name, r.route, got.Allowed, c.allowed[i])
			}
			status := call(s, r.method, r.path, c.token, map[string]string{}).Code
			if denied := status == 403; denied == got.Allowed {
				t.Errorf("%s: whoami says %s allowed=%v but the API answered %d", c.name, r.route, got.Allowed, status)
			}
		}
		if n := who.Routes["POST /api/v1/things"].Needs; n != "deployer" {
			t.Errorf("POST /api/v1/things needs %q, want deployer", n)
		}
		if n := who.Routes["GET /api/v1/tokens"].Needs; n != "admin" {
			t.Errorf("GET /api/v1/tokens needs %q, want admin", n)
		}
	}

	if rec := call(s, "GET", "/api/v1/whoami?route="+url.QueryEscape("POST /api/v1/nothing"), admin, nil); rec.Code != 400 {
		t.Errorf("unknown route: %d %s, want 400", rec.Code, rec.Body)
	}
	if rec := call(s, "GET", "/api/v1/whoami", "", nil); rec.Code != 401 {
		t.Errorf("no token on a closed API: %d, want 401", rec.Code)
	}
}

func TestWhoamiAnonymousOnAnOpenAPI(t *testing.T) {
	s, _, _ := newServer(t, true)
	rec := call(s, "GET", "/api/v1/whoami?route="+url.QueryEscape("POST /api/v1/things")+"&route="+url.QueryEscape("GET /api/v1/things"), "", nil)
	if rec.Code != 200 {
		t.Fatalf("whoami %d %s", rec.Code, rec.Body)
	}
	var who Whoami
	json.Unmarshal(rec.Body.Bytes(), &who)
	if !who.Anonymous || who.Role != "viewer" || who.Routes["POST /api/v1/things"].Allowed || !who.Routes["GET /api/v1/things"].Allowed {
		t.Errorf("anonymous: %+v", who)
	}
	if code := call(s, "POST", "/api/v1/things", "", map[string]string{}).Code; code != 401 {
		t.Errorf("anonymous POST answered %d, whoami said not allowed", code)
	}
}
