package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/runners"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/web"
)

// downTarget is a cluster that does not answer.
type downTarget struct{}

func (downTarget) Scale(context.Context, int) (int, error) {
	return 0, errors.New("dial tcp 10.0.0.9:6443: connect: connection refused")
}
func (downTarget) Close() error { return nil }

// TestRunnersPageInChromium: a controller over a real state store, with
// local runner processes, fed by signed webhooks over half an hour of a
// clock; the runners page shows each pool's runners, queue, active
// schedule, budget used today and target error, and for the selected
// pool the day's plot, its queue and its recent decisions with why
// (screenshot runners.png).
func TestRunnersPageInChromium(t *testing.T) {
	requireBrowser(t)
	ctx := context.Background()
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q, err := runners.OpenQueue(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	c := runners.NewController(q, st)
	var mu sync.Mutex
	now := time.Now().Add(-30 * time.Minute)
	c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c.NewTarget = func(p runners.RunnerPool) (runners.Target, error) {
		if p.Metadata.Name == "arm" {
			return downTarget{}, nil
		}
		return runners.NewLocalTarget(p), nil
	}
	for _, doc := range []string{
		`{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"e2e-linux"},"spec":{"labels":["self-hosted","linux"],"min":1,"max":6,
"runnerHoursPerDay":40,"idleTimeout":"5m","target":{"local":{"command":["sleep","300"]}},
"schedules":[{"cron":"0 3 * * *","timeZone":"Asia/Seoul","duration":"1h","min":1},{"cron":"* * * * *","timeZone":"UTC","duration":"2h","spare":1}]}}`,
		`{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"arm"},"spec":{"labels":["self-hosted","arm64"],"min":1,"max":2,
"target":{"kubernetes":{"cluster":"edge","deployment":"ci/arm-runners"}}}}`,
	} {
		p, err := runners.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	defer c.Delete(ctx, "e2e-linux") // stops its runner processes

	const secret = "a-webhook-secret-of-some-length"
	srv := server.New(server.Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	srv.RegisterRunners(c, func() string { return secret })
	ts := httptest.NewServer(srv)
	defer ts.Close()
	hook := func(id, action string, job int) {
		body := fmt.Appendf(nil, `{"action":%q,"workflow_job":{"id":%d,"labels":["self-hosted","linux"]},"repository":{"full_name":"acme/app"}}`, action, job)
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/hooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "workflow_job")
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set("X-Hub-Signature-256", runners.Sign(secret, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delivery %s: %v %v", id, err, resp)
		}
		resp.Body.Close()
	}
	step := func() {
		c.Reconcile(ctx)
		mu.Lock()
		now = now.Add(3 * time.Minute)
		mu.Unlock()
	}
	step()
	hook("d1", "queued", 1)
	hook("d2", "queued", 2)
	step()
	hook("d3", "in_progress", 1)
	step()
	hook("d4", "queued", 3)
	hook("d5", "queued", 4)
	step()
	hook("d6", "in_progress", 2)
	hook("d7", "completed", 1)
	for range 5 {
		step()
	}

	artifacts := testproc.ArtifactsDir(t)
	if err := testproc.RunBrowserScript(ctx, t, testproc.BrowserScript{
		Dir: ".", Name: "runners.mjs", Env: []string{"PAVE_URL=" + ts.URL, "PAVE_ARTIFACTS=" + artifacts},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(artifacts, "runners.png")); err != nil {
		t.Errorf("screenshot: %v", err)
	}
}
