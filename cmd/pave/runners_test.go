package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/runners"
)

// TestRunnersEndToEnd: a pool applied with the CLI to a real `pave up`
// scales local runner processes on a signed workflow_job webhook, shows
// in `pave runners status -o json`, and its runners stop with `pave up`.
func TestRunnersEndToEnd(t *testing.T) {
	t.Parallel()
	const secret = "a-webhook-secret-of-some-length"
	up := startUp(t, t.TempDir(), "--github-webhook-secret", secret)
	srv := []string{"PAVE_SERVER=" + up.api}
	dir := t.TempDir()
	spec := filepath.Join(dir, "linux.yaml")
	doc := `apiVersion: pave.dev/v1alpha1
kind: RunnerPool
metadata: {name: e2e-linux}
spec:
  labels: [self-hosted, linux]
  min: 1
  max: 3
  target: {local: {command: [sleep, "120"]}}
  schedules:
  - {cron: "0 9 * * 1-5", timeZone: Asia/Seoul, duration: 10h, min: 2}
`
	os.WriteFile(spec, []byte(strings.Replace(doc, "Asia/Seoul", "Asia/Nowhere", 1)), 0o644)
	if out, err := pave(t, srv, "runners", "apply", "-f", spec); err == nil || !strings.Contains(out, "spec.schedules[0].timeZone") {
		t.Fatalf("bad zone: want a failure naming spec.schedules[0].timeZone, got %v:\n%s", err, out)
	}
	os.WriteFile(spec, []byte(strings.Replace(doc, `{local: {command: [sleep, "120"]}}`, `{kubernetes: {cluster: nowhere, autoscalingRunnerSet: arc/linux}}`, 1)), 0o644)
	if out, err := pave(t, srv, "runners", "apply", "-f", spec); err == nil || !strings.Contains(out, "spec.target.kubernetes.cluster") {
		t.Fatalf("unregistered cluster: want a failure naming spec.target.kubernetes.cluster, got %v:\n%s", err, out)
	}
	os.WriteFile(spec, []byte(doc), 0o644)
	if out, err := pave(t, srv, "runners", "apply", "-f", spec); err != nil || !strings.Contains(out, "runnerpool/e2e-linux applied") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	body := []byte(`{"action":"queued","workflow_job":{"id":42,"labels":["self-hosted","linux"]}}`)
	req, _ := http.NewRequest(http.MethodPost, up.api+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "workflow_job")
	req.Header.Set("X-GitHub-Delivery", "e2e-1")
	req.Header.Set("X-Hub-Signature-256", runners.Sign(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	var st runnersStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := pave(t, srv, "runners", "status", "-o", "json")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
		if len(st.Pools) == 1 && st.Pools[0].Queued == 1 && st.Pools[0].Runners >= 1 && countPoolProcs("e2e-linux") == st.Pools[0].Runners {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool never showed the queued job and its runners: %+v (processes %d)", st, countPoolProcs("e2e-linux"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if out, err := pave(t, srv, "runners", "status"); err != nil || !strings.Contains(out, "e2e-linux") || !strings.Contains(out, "QUEUED") {
		t.Fatalf("status text: %v\n%s", err, out)
	}
	if out, err := pave(t, srv, "runners", "suggest", "--pool", "e2e-linux"); err == nil || !strings.Contains(out, "no finished jobs") {
		t.Fatalf("suggest without history: want a failure saying so, got %v\n%s", err, out)
	}
	up.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-up.done:
	case <-time.After(30 * time.Second):
		t.Fatal("pave up did not stop on SIGTERM")
	}
	// pave up stops its runners on the way out; their exit (and reaping)
	// may lag on a loaded machine: wait for it rather than for a time.
	for deadline := time.Now().Add(30 * time.Second); countPoolProcs("e2e-linux") != 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if n := countPoolProcs("e2e-linux"); n != 0 {
		t.Fatalf("%d runner processes outlived pave up by 30 s", n)
	}
}

// countPoolProcs counts live processes with PAVE_RUNNER_POOL=pool.
func countPoolProcs(pool string) int {
	n := 0
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range envs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte("PAVE_RUNNER_POOL="+pool+"\x00")) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join(filepath.Dir(f), "stat")); err == nil && !strings.Contains(string(st), ") Z ") {
			n++
		}
	}
	return n
}

// TestRunnersKillNineAndRestart: after kill -9 of `pave up` and a
// restart on the same data directory, the pool, the queue, the history
// `suggest` reads and the delivery ids seen are back (a redelivered
// webhook is still a duplicate), and the killed control plane's local
// runners did not outlive it.
func TestRunnersKillNineAndRestart(t *testing.T) {
	t.Parallel()
	const secret = "a-webhook-secret-of-some-length"
	data := t.TempDir()
	up := startUp(t, data, "--github-webhook-secret", secret)
	srv := []string{"PAVE_SERVER=" + up.api}
	spec := filepath.Join(t.TempDir(), "pool.yaml")
	os.WriteFile(spec, []byte(`apiVersion: pave.dev/v1alpha1
kind: RunnerPool
metadata: {name: k9-linux}
spec:
  labels: [self-hosted, linux]
  min: 1
  max: 3
  target: {local: {command: [sleep, "300"]}}
`), 0o644)
	if out, err := pave(t, srv, "runners", "apply", "-f", spec); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	now := time.Now().UTC()
	hook := func(api, delivery, action string, job int) int {
		body := fmt.Appendf(nil, `{"action":%q,"workflow_job":{"id":%d,"labels":["self-hosted","linux"],"created_at":%q,"started_at":%q,"completed_at":%q},"repository":{"full_name":"acme/app"}}`,
			action, job, now.Add(-10*time.Minute).Format(time.RFC3339), now.Add(-9*time.Minute).Format(time.RFC3339), now.Add(-time.Minute).Format(time.RFC3339))
		req, _ := http.NewRequest(http.MethodPost, api+"/hooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "workflow_job")
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set("X-Hub-Signature-256", runners.Sign(secret, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, d := range []struct {
		id, action string
		job        int
	}{{"k1", "queued", 1}, {"k2", "queued", 2}, {"k3", "in_progress", 2}, {"k4", "completed", 2}} {
		if code := hook(up.api, d.id, d.action, d.job); code != http.StatusAccepted {
			t.Fatalf("delivery %s: %d", d.id, code)
		}
	}
	waitPool := func(srv []string, ok func(runnersStatus) bool) runnersStatus {
		t.Helper()
		var st runnersStatus
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := pave(t, srv, "runners", "status", "-o", "json")
			if err == nil && json.Unmarshal([]byte(out), &st) == nil && ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("pool never reached the expected state: %v %+v\n%s", err, st, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	waitPool(srv, func(st runnersStatus) bool {
		return len(st.Pools) == 1 && st.Pools[0].Queued == 1 && st.Pools[0].Runners >= 1 && countPoolProcs("k9-linux") >= 1
	})

	up.cmd.Process.Kill() // kill -9
	<-up.done
	deadline := time.Now().Add(30 * time.Second)
	for countPoolProcs("k9-linux") != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := countPoolProcs("k9-linux"); n != 0 {
		t.Fatalf("%d runner processes outlived the killed pave up", n)
	}

	up2 := startUp(t, data, "--github-webhook-secret", secret)
	srv2 := []string{"PAVE_SERVER=" + up2.api}
	st := waitPool(srv2, func(st runnersStatus) bool {
		return len(st.Pools) == 1 && st.Pools[0].Name == "k9-linux" && st.Pools[0].Queued == 1 && st.Pools[0].Runners >= 1
	})
	if st.Webhook.History != 1 || st.Webhook.Tracked != 1 {
		t.Fatalf("queue after restart: %+v", st.Webhook)
	}
	if code := hook(up2.api, "k1", "queued", 1); code != http.StatusOK {
		t.Fatalf("redelivery after restart: want 200 (duplicate), got %d", code)
	}
	if code := hook(up2.api, "k5", "queued", 2); code != http.StatusAccepted {
		t.Fatalf("late queued: %d", code)
	}
	st = waitPool(srv2, func(st runnersStatus) bool { return st.Webhook.Duplicates == 1 })
	if st.Pools[0].Queued != 1 || st.Webhook.Tracked != 1 {
		t.Fatalf("a redelivery or a late queued changed the queue: %+v", st)
	}
	if out, err := pave(t, srv2, "runners", "suggest", "--pool", "k9-linux"); err != nil || !strings.Contains(out, "# pool k9-linux") {
		t.Fatalf("suggest from the history kept across the restart: %v\n%s", err, out)
	}
	if out, err := pave(t, srv2, "runners", "delete", "k9-linux"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for countPoolProcs("k9-linux") != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := countPoolProcs("k9-linux"); n != 0 {
		t.Fatalf("%d runner processes outlived the deleted pool", n)
	}
}
