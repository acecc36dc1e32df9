package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/release/releasetest"
)

func newReleaseServer(t *testing.T) (*httptest.Server, *release.Engine, *releasetest.Router) {
	t.Helper()
	rig := releasetest.NewRig(t, nil)
	eng, router := rig.Engine, rig.Router
	s := New(Options{Tokens: auth.Tokens{Store: rig.Store}, Open: true, RunRoots: allRoots(t), Log: slog.New(slog.DiscardHandler)})
	ReleaseAPI{Engine: eng}.Register(s)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	authorizeClient(t, ts, auth.Tokens{Store: rig.Store})
	return ts, eng, router
}

func releaseCall(t *testing.T, ts *httptest.Server, method, path, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, raw
}

const releaseYAML = `apiVersion: pave.dev/v1alpha1
kind: Release
spec:
  service: shop
  version: v2
  binary: /srv/shop
  steps: [1, 10, 100]
`

func TestReleaseAPI(t *testing.T) {
	ts, eng, router := newReleaseServer(t)

	code, body, _ := releaseCall(t, ts, "POST", "/api/v1/releases", strings.Replace(releaseYAML, "steps: [1, 10, 100]", "steps: [1, 10, 5, 100]", 1))
	if code != 400 || body["field"] != "spec.steps[2]" {
		t.Fatalf("steps out of order: %d %v", code, body)
	}
	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases", releaseYAML+"  colour: blue\n")
	if code != 400 || body["field"] != "spec.colour" {
		t.Fatalf("unknown field: %d %v", code, body)
	}
	if code, _, raw := releaseCall(t, ts, "GET", "/api/v1/releases", ""); code != 200 || string(raw) != "[]" {
		t.Fatalf("refused specs left something behind: %d %s", code, raw)
	}

	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases", releaseYAML)
	if code != 201 || body["metadata"].(map[string]any)["name"] != "shop-v2" {
		t.Fatalf("create: %d %v", code, body)
	}
	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases", strings.Replace(releaseYAML, "v2", "v3", 1))
	if code != 400 || body["field"] != "spec.service" {
		t.Fatalf("second release of a service: %d %v", code, body)
	}
	if err := eng.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, body, _ = releaseCall(t, ts, "GET", "/api/v1/releases/shop-v2", "")
	if code != 200 || body["status"].(map[string]any)["phase"] != "progressing" {
		t.Fatalf("status: %d %v", code, body)
	}
	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases/shop-v2/pause", "")
	if code != 200 || body["status"].(map[string]any)["phase"] != "paused" {
		t.Fatalf("pause: %d %v", code, body)
	}
	// Pausing a paused release is a no-op that says so, not an error.
	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases/shop-v2/pause", "{}")
	if code != 200 || body["status"].(map[string]any)["phase"] != "paused" || !strings.Contains(body["message"].(string), "paused already") {
		t.Fatalf("pause twice: %d %v", code, body)
	}
	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases/shop-v2/resume", "{}")
	if code != 200 || body["status"].(map[string]any)["phase"] != "progressing" {
		t.Fatalf("resume: %d %v", code, body)
	}
	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases/shop-v2/resume", "{}")
	if code != 200 || body["status"].(map[string]any)["phase"] != "progressing" || !strings.Contains(body["message"].(string), "progressing already") {
		t.Fatalf("resume twice: %d %v", code, body)
	}
	if code, _, _ = releaseCall(t, ts, "POST", "/api/v1/releases/shop-v2/explode", ""); code != 404 {
		t.Fatalf("unknown action: %d", code)
	}
	if code, _, _ = releaseCall(t, ts, "GET", "/api/v1/releases/nope", ""); code != 404 {
		t.Fatalf("unknown release: %d", code)
	}
	code, body, _ = releaseCall(t, ts, "POST", "/api/v1/releases/shop-v2/abort", "")
	w, _ := router.Weights(context.Background(), "shop")
	if code != 200 || body["status"].(map[string]any)["phase"] != "aborted" || w["v2"] != 0 {
		t.Fatalf("abort: %d %v %v", code, body, w)
	}
	code, _, raw := releaseCall(t, ts, "GET", "/api/v1/releases/shop-v2/history", "")
	if code != 200 || !strings.Contains(string(raw), `"type": "abort"`) || !strings.Contains(string(raw), "local") {
		t.Fatalf("history: %d %s", code, raw)
	}
	code, _, raw = releaseCall(t, ts, "GET", "/api/v1/releases?service=other", "")
	if code != 200 || string(raw) != "[]" {
		t.Fatalf("filter by service: %d %s", code, raw)
	}
}
