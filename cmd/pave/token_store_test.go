package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/state/pgtest"
)

// `pave token create` writes a bootstrap token into the control plane's
// PostgreSQL, named by --state-store or by PAVE_STATE_STORE beside
// --data-dir; the token authenticates against a `pave up` (requiring
// tokens) on the same database, and a wrong one does not.
func TestTokenCreateOnPostgres(t *testing.T) {
	t.Parallel() // its own pave up, ports and directories; it mostly waits
	pg := pgtest.New(t)
	url := pg.Database(t)
	up := startUp(t, t.TempDir(), "--state-store", url, "--require-auth")

	get := func(secret string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, up.api+"/api/v1/tokens", nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}
	for name, c := range map[string]struct {
		env  []string
		args []string
	}{
		"flag": {nil, []string{"--state-store", url}},
		"env":  {[]string{"PAVE_STATE_STORE=" + url}, []string{"--data-dir", t.TempDir()}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := pave(t, c.env, append([]string{"token", "create", "--role", "admin", "--name", "bootstrap-" + name, "-o", "json"}, c.args...)...)
			if err != nil {
				t.Fatalf("pave token create: %v\n%s", err, out)
			}
			var resp struct {
				ID     string `json:"id"`
				Secret string `json:"secret"`
			}
			if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Secret == "" {
				t.Fatalf("pave token create -o json: %v\n%s", err, out)
			}
			if code := get(resp.Secret); code != http.StatusOK {
				t.Fatalf("the created token against pave up on the same PostgreSQL: %d, want 200", code)
			}
			if code := get(resp.Secret + "x"); code != http.StatusUnauthorized {
				t.Fatalf("a wrong secret: %d, want 401", code)
			}
			out, err = pave(t, []string{"PAVE_SERVER=" + up.api, "PAVE_TOKEN=" + resp.Secret}, "token", "list")
			if err != nil || !strings.Contains(out, "bootstrap-"+name) {
				t.Fatalf("pave token list with the new token: %v\n%s", err, out)
			}
		})
	}
	// Bad input: a store that is neither sqlite nor PostgreSQL is named.
	out, err := pave(t, nil, "token", "create", "--role", "viewer", "--state-store", "mysql://x")
	if err == nil || !strings.Contains(out, "setting state-store") {
		t.Fatalf("want an error naming the setting, got %v:\n%s", err, out)
	}
	out, err = pave(t, nil, "token", "create", "--role", "viewer", "--state-store", "sqlite")
	if err == nil || !strings.Contains(out, "--data-dir") {
		t.Fatalf("want an error asking for --data-dir, got %v:\n%s", err, out)
	}
}
