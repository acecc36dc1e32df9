package apiclient_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
)

// The CLI on the control plane's machine acts with the admin token file
// `pave up` wrote, with no configuration; a token given explicitly wins;
// a token file others may read is not used, and the 401 says why.
func TestClientFindsTheLocalAdminToken(t *testing.T) {
	data := t.TempDir()
	st, err := state.OpenSQLite(filepath.Join(data, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	toks := auth.Tokens{Store: st}
	file, err := toks.EnsureLocalAdmin(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi.Mode(), err)
	}
	again, err := toks.EnsureLocalAdmin(context.Background(), data)
	if err != nil || again != file {
		t.Fatal(again, err)
	}
	if list, _ := toks.List(context.Background()); len(list) != 1 {
		t.Fatalf("a second start made another token: %d", len(list))
	}
	s := server.New(server.Options{Tokens: toks, Open: true, LocalTokenFile: file, Log: slog.New(slog.DiscardHandler)})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)

	var created server.TokenResponse
	if err := apiclient.New(ts.URL, "").Do(context.Background(), http.MethodPost, "/api/v1/tokens", server.TokenRequest{Role: "viewer"}, &created); err != nil {
		t.Fatalf("with the local token: %v", err)
	}
	// A viewer token given explicitly is used instead, and may not create.
	err = apiclient.New(ts.URL, created.Secret).Do(context.Background(), http.MethodPost, "/api/v1/tokens", server.TokenRequest{Role: "viewer"}, nil)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("explicit viewer token: %v", err)
	}
	// A body-less action goes out as JSON {} (the API takes nothing else).
	if err := apiclient.New(ts.URL, "").Do(context.Background(), http.MethodDelete, "/api/v1/tokens/"+created.ID, nil, nil); err != nil {
		t.Fatalf("body-less DELETE: %v", err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	err = apiclient.New(ts.URL, "").Do(context.Background(), http.MethodPost, "/api/v1/tokens", server.TokenRequest{Role: "viewer"}, nil)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a token file others may read: %v", err)
	}
}
