package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/runners"
	"github.com/pave-platform/pave/internal/state"
)

const hookSecret = "0123456789abcdef0123"

func newRunnersServer(t *testing.T) (*httptest.Server, *runners.Controller, auth.Tokens) {
	t.Helper()
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens := auth.Tokens{Store: st}
	s := New(Options{Tokens: tokens, Open: true, Log: slog.New(slog.DiscardHandler)})
	q, err := runners.OpenQueue(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	c := runners.NewController(q, st)
	s.RegisterRunners(c, func() string { return hookSecret })
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, c, tokens
}

func hook(t *testing.T, ts *httptest.Server, delivery, contentType, sig string, job int) (int, string) {
	t.Helper()
	body := fmt.Appendf(nil, `{"action":"queued","workflow_job":{"id":%d,"labels":["linux"]}}`, job)
	if sig == "" {
		sig = runners.Sign(hookSecret, body)
	}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-GitHub-Event", "workflow_job")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", sig)
	resp, err := http.DefaultClient.Do(req) // no bearer token: GitHub has none
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestGitHubHookAuthenticatesByHMACNotByToken: the webhook route takes no
// bearer token (GitHub has none) and is authenticated by its signature;
// the front door's JSON rule still holds for it.
func TestGitHubHookAuthenticatesByHMACNotByToken(t *testing.T) {
	ts, c, _ := newRunnersServer(t)
	if code, body := hook(t, ts, "d1", "application/json", "sha256=deadbeef", 1); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: want 401, got %d %s", code, body)
	}
	if q, _, _ := c.Queue.Counts([]string{"linux"}); q != 0 || c.Queue.Stats().BadSignatures != 1 {
		t.Fatalf("a forged delivery changed the queue or was not counted: %d queued, %+v", q, c.Queue.Stats())
	}
	if code, body := hook(t, ts, "d2", "application/x-www-form-urlencoded", "", 2); code != http.StatusUnsupportedMediaType {
		t.Fatalf("form-encoded webhook: want 415 from the front door, got %d %s", code, body)
	}
	if code, body := hook(t, ts, "d3", "application/json", "", 3); code != http.StatusAccepted {
		t.Fatalf("signed delivery without a token: want 202, got %d %s", code, body)
	}
	if code, _ := hook(t, ts, "d3", "application/json", "", 3); code != http.StatusOK {
		t.Fatalf("replayed delivery: want 200, got %d", code)
	}
	if q, _, _ := c.Queue.Counts([]string{"linux"}); q != 1 {
		t.Fatalf("want exactly the one signed job queued, got %d", q)
	}
}

func TestRunnerPoolApplyNeedsAdminAndNamesTheField(t *testing.T) {
	ts, c, tokens := newRunnersServer(t)
	_, deployer, err := tokens.Create(context.Background(), "dep", auth.RoleDeployer)
	if err != nil {
		t.Fatal(err)
	}
	_, admin, err := tokens.Create(context.Background(), "adm", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	post := func(token, doc string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/runnerpools", strings.NewReader(doc))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	good := `{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"linux"},"spec":{"labels":["linux"],"max":3,"target":{"local":{"command":["sleep","60"]}}}}`
	if code, _ := post(deployer, good); code != http.StatusForbidden {
		t.Fatalf("deployer applying a pool (a local command): want 403, got %d", code)
	}
	bad := strings.Replace(good, `"max":3`, `"max":3,"schedules":[{"cron":"0 9 * * 1-5","timeZone":"Mars/Olympus","duration":"1h"}]`, 1)
	code, m := post(admin, bad)
	if code != http.StatusUnprocessableEntity || m["field"] != "spec.schedules[0].timeZone" {
		t.Fatalf("bad zone: want 422 naming spec.schedules[0].timeZone, got %d %v", code, m)
	}
	if code, m := post(admin, good); code != http.StatusOK {
		t.Fatalf("apply: %d %v", code, m)
	}
	c.Reconcile(context.Background())
	defer func() { c.Run(canceled(), time.Second) }() // stops the runner processes
	resp, err := http.Get(ts.URL + "/api/v1/runnerpools")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var status struct{ Pools []runners.PoolStatus }
	json.NewDecoder(resp.Body).Decode(&status)
	if len(status.Pools) != 1 || status.Pools[0].Name != "linux" || status.Pools[0].Max != 3 {
		t.Fatalf("status: %+v", status)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
