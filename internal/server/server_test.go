package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/frontdoor"
	"github.com/pave-platform/pave/internal/state"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newServer(t *testing.T, open bool) (*Server, auth.Tokens, *syncBuf) {
	t.Helper()
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuf{}
	toks := auth.Tokens{Store: st}
	s := New(Options{Tokens: toks, Open: open, Log: slog.New(slog.NewJSONHandler(logs, nil))})
	s.HandleFunc("GET /api/v1/things", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, 200, map[string]string{"who": PrincipalFrom(r.Context()).Role.String()})
	})
	s.HandleFunc("POST /api/v1/things", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 201, nil) })
	return s, toks, logs
}

func call(s http.Handler, method, path, token string, body any) *httptest.ResponseRecorder {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Host = "127.0.0.1:7070"
	if frontdoor.Mutating(method) {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestRolesAndTokens(t *testing.T) {
	s, toks, logs := newServer(t, false)
	ctx := context.Background()
	_, viewer, _ := toks.Create(ctx, "v", auth.RoleViewer)
	_, deployer, _ := toks.Create(ctx, "d", auth.RoleDeployer)
	_, admin, _ := toks.Create(ctx, "a", auth.RoleAdmin)
	bogus := viewer[:len(viewer)-4] + "0000"

	cases := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/v1/things", "", 401},
		{"GET", "/api/v1/things", "garbage", 401},
		{"GET", "/api/v1/things", bogus, 401},
		{"GET", "/api/v1/things", viewer, 200},
		{"POST", "/api/v1/things", viewer, 403},
		{"POST", "/api/v1/things", deployer, 201},
		{"GET", "/api/v1/tokens", deployer, 403},
		{"GET", "/api/v1/tokens", admin, 200},
		{"GET", "/healthz", "", 503}, // public, but not ready yet
	}
	for _, c := range cases {
		if rec := call(s, c.method, c.path, c.token, nil); rec.Code != c.want {
			t.Errorf("%s %s with %q: %d, want %d (%s)", c.method, c.path, c.token, rec.Code, c.want, rec.Body)
		}
	}
	s.SetReady(true)
	if rec := call(s, "GET", "/healthz", "", nil); rec.Code != 200 {
		t.Errorf("healthz once ready: %d", rec.Code)
	}
	// Denials are logged, tokens never.
	out := logs.String()
	if !strings.Contains(out, "api access denied") {
		t.Fatalf("denials not logged: %s", out)
	}
	for _, secret := range []string{viewer, deployer, bogus, strings.Split(bogus, "_")[2]} {
		if strings.Contains(out, secret) {
			t.Fatalf("log contains a token secret: %s", out)
		}
	}
}

func TestOpenModeOnlyReadsAndChecksGivenTokens(t *testing.T) {
	s, _, _ := newServer(t, true)
	rec := call(s, "GET", "/api/v1/things", "", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "viewer") {
		t.Fatalf("open mode reads as viewer: %d %s", rec.Code, rec.Body)
	}
	if rec := call(s, "POST", "/api/v1/things", "", nil); rec.Code != 401 || !strings.Contains(rec.Body.String(), "admin.token") {
		t.Fatalf("open mode changes nothing without a token: %d %s", rec.Code, rec.Body)
	}
	if rec := call(s, "GET", "/api/v1/tokens", "", nil); rec.Code != 403 {
		t.Fatalf("open mode does not list tokens: %d %s", rec.Code, rec.Body)
	}
	if rec := call(s, "GET", "/api/v1/things", "pave_nope_nope", nil); rec.Code != 401 {
		t.Fatalf("a wrong token is refused even in open mode: %d", rec.Code)
	}
}

func TestTokenAPI(t *testing.T) {
	s, toks, _ := newServer(t, true)
	_, admin, _ := toks.Create(context.Background(), "a", auth.RoleAdmin)
	rec := call(s, "POST", "/api/v1/tokens", admin, TokenRequest{Name: "ci", Role: "deployer"})
	if rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var tr TokenResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &tr)
	if !strings.HasPrefix(tr.Secret, "pave_"+tr.ID+"_") || tr.Hash != "" {
		t.Fatalf("token response: %+v", tr)
	}
	if rec := call(s, "POST", "/api/v1/things", tr.Secret, nil); rec.Code != 201 {
		t.Fatalf("new deployer token: %d", rec.Code)
	}
	rec = call(s, "POST", "/api/v1/tokens", admin, map[string]string{"role": "god"})
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"field": "role"`) {
		t.Fatalf("bad role: %d %s", rec.Code, rec.Body)
	}
	rec = call(s, "POST", "/api/v1/tokens", admin, map[string]string{"role": "viewer", "extra": "x"})
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "unknown field") {
		t.Fatalf("unknown field: %d %s", rec.Code, rec.Body)
	}
	rec = call(s, "GET", "/api/v1/tokens", admin, nil)
	if strings.Contains(rec.Body.String(), tr.Secret) || strings.Contains(rec.Body.String(), `"hash"`) {
		t.Fatalf("list leaks secrets: %s", rec.Body)
	}
	if rec := call(s, "DELETE", "/api/v1/tokens/"+tr.ID, admin, nil); rec.Code != 204 {
		t.Fatalf("revoke: %d", rec.Code)
	}
	if rec := call(s, "POST", "/api/v1/things", tr.Secret, nil); rec.Code != 401 {
		t.Fatalf("revoked token still works: %d", rec.Code)
	}
}
