package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/state"
)

// The API over a real local runtime that is not running its reconcile
// loop: deployments are validated, prepared and recorded, nothing starts.
func TestRuntimeAPI(t *testing.T) {
	dir := t.TempDir()
	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := runtime.NewLocal(runtime.LocalOptions{Store: st, DataDir: filepath.Join(dir, "data"), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Tokens: auth.Tokens{Store: st}, Open: true, RunRoots: allRoots(t), Log: quiet})
	RuntimeAPI{Target: rt}.Register(s)
	_, admin, err := auth.Tokens{Store: st}.Create(context.Background(), "test", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}

	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		var in any
		if body != "" {
			in = json.RawMessage(body)
		}
		rec := call(s, method, path, admin, in)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	bin := "/bin/true"

	bad := []struct {
		method, path, body string
		code               int
		field, want        string
	}{
		{"PUT", "/api/v1/runtime/orders/v1", `{"binary":"/bin/true","replicas":-2}`, 400, "replicas", "want 0 to"},
		{"PUT", "/api/v1/runtime/orders/v1", `{"binary":"/bin/true","extra":1}`, 400, "", `unknown field "extra"`},
		{"PUT", "/api/v1/runtime/orders/v1", `{"binary":"/nope/orders"}`, 400, "binary", "does not exist"},
		{"PUT", "/api/v1/runtime/orders/v1", `{"source":"/nope/orders"}`, 400, "source", "does not exist"},
		{"PUT", "/api/v1/runtime/orders/v1", `{"image":"orders:v1"}`, 400, "image", "not images"},
		{"PUT", "/api/v1/runtime/Orders/v1", `{"binary":"/bin/true"}`, 400, "service", "service name"},
		{"PUT", "/api/v1/runtime/orders/v1..x", `{"binary":"/bin/true"}`, 400, "version", "version name"},
		{"GET", "/api/v1/runtime/orders/v1", "", 404, "", "not deployed"},
		{"GET", "/api/v1/runtime/orders", "", 404, "service", "has no version running"},
		{"DELETE", "/api/v1/runtime/orders/v1", "", 404, "", "not deployed"},
		{"DELETE", "/api/v1/runtime/orders", "", 404, "service", "has no version running"},
	}
	for _, c := range bad {
		code, out := do(c.method, c.path, c.body)
		msg, _ := out["error"].(string)
		field, _ := out["field"].(string)
		if code != c.code || field != c.field || !strings.Contains(msg, c.want) {
			t.Errorf("%s %s %s: %d field %q %q; want %d field %q saying %q", c.method, c.path, c.body, code, field, msg, c.code, c.field, c.want)
		}
	}
	if code, out := do("GET", "/api/v1/runtime", ""); code != 200 || len(out["deployments"].([]any)) != 0 {
		t.Fatalf("list after refusals: %d %v", code, out)
	}

	code, out := do("PUT", "/api/v1/runtime/orders/v1", `{"binary":"`+bin+`","replicas":3,"env":{"GREETING":"hi"}}`)
	if code != http.StatusAccepted || out["replicas"].(float64) != 3 || out["service"] != "orders" {
		t.Fatalf("deploy: %d %v", code, out)
	}
	if code, out := do("GET", "/api/v1/runtime/orders", ""); code != 200 || len(out["deployments"].([]any)) != 1 {
		t.Fatalf("list service: %d %v", code, out)
	}
	if code, out := do("PUT", "/api/v1/runtime/orders/v1", `{"binary":"`+bin+`"}`); code != http.StatusAccepted || out["replicas"].(float64) != 1 {
		t.Fatalf("replicas default to 1: %d %v", code, out)
	}
	if code, _ := do("DELETE", "/api/v1/runtime/orders", ""); code != http.StatusAccepted {
		t.Fatalf("stop service: %d", code)
	}
	if code, _ := do("GET", "/api/v1/runtime/orders/v1", ""); code != 404 {
		t.Fatalf("after stop: %d", code)
	}
}
