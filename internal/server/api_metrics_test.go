package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/state"
)

// TestMetricsFormPOSTIsARead: Prometheus' query routes take a form POST
// as a read (open on loopback, no JSON needed), still behind the Host and
// Origin checks; every other POST keeps the JSON-only rule.
func TestMetricsFormPOSTIsARead(t *testing.T) {
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tokens := auth.Tokens{Store: st}
	// The store's handler is replaced by one that echoes the query it
	// read; internal/metrics and cmd/pave test the real one.
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		io.WriteString(w, "query="+r.FormValue("query"))
	})
	routes := []MetricsRoute{{"/api/v1/query", true}, {"/api/v1/targets", false}}
	serve := func(open bool) *httptest.Server {
		s := New(Options{Tokens: tokens, Open: open, Log: slog.New(slog.DiscardHandler)})
		MetricsAPI{Handler: echo, Routes: routes}.Register(s)
		ts := httptest.NewServer(s)
		t.Cleanup(ts.Close)
		return ts
	}
	open, closed := serve(true), serve(false)
	_, viewer, err := tokens.Create(context.Background(), "v", auth.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"query": {"up"}}.Encode()
	for _, c := range []struct {
		name    string
		ts      *httptest.Server
		method  string
		path    string
		headers map[string]string
		code    int
		in      string
	}{
		{"form POST query on loopback", open, "POST", "/api/v1/query", nil, 200, "query=up"},
		{"GET query", open, "GET", "/api/v1/query?query=up", nil, 200, "query=up"},
		{"form POST to a GET-only route", open, "POST", "/api/v1/targets", nil, 415, "application/json"},
		{"form POST from another site", open, "POST", "/api/v1/query", map[string]string{"Origin": "http://evil.example"}, 403, "cross-origin"},
		{"fetch from another site", open, "POST", "/api/v1/query", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"rebinding Host", open, "POST", "/api/v1/query", map[string]string{"Host": "evil.example"}, 421, "not a name of this server"},
		{"no token off loopback", closed, "POST", "/api/v1/query", nil, 401, "missing bearer token"},
		{"viewer token off loopback", closed, "POST", "/api/v1/query", map[string]string{"Authorization": "Bearer " + viewer}, 200, "query=up"},
	} {
		body := ""
		if c.method == "POST" {
			body = form
		}
		req, _ := http.NewRequest(c.method, c.ts.URL+c.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range c.headers {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.in) {
			t.Errorf("%s: %d %s; want %d containing %q", c.name, resp.StatusCode, b, c.code, c.in)
		}
	}
}
