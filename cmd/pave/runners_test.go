package main

import (
	"bytes"
	"encoding/json"
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
	deadline := time.Now().Add(25 * time.Second)
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
	time.Sleep(200 * time.Millisecond)
	if n := countPoolProcs("e2e-linux"); n != 0 {
		t.Fatalf("%d runner processes outlived pave up", n)
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
