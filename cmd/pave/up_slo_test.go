package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/runtime"
)

// TestServiceSLOsAndProbesThroughPaveUp: a running service's .pave.yaml
// SLOs become rule groups of pave up's alert engine, its probes run
// through the gateway and are scraped into the metrics store (a failing
// probe reads 0), and stopping the service removes both.
func TestServiceSLOsAndProbesThroughPaveUp(t *testing.T) {
	t.Parallel() // its own pave up, ports and directories; it mostly waits
	src := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module plain\n\ngo 1.26\n",
		"main.go": plainService,
		".pave.yaml": "slos:\n  source: gateway\n  availability: {objective: 99.9}\n  runbook: https://wiki.example.com/plain\n" +
			"probes:\n  - path: /v1/ping\n    interval: 5s\n    timeout: 2s\n" +
			"  - path: /v1/created\n    expectStatus: 201\n    interval: 5s\n    timeout: 2s\n",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	up := startUp(t, t.TempDir(), "--metrics-scrape-interval", "1s")
	env := []string{"PAVE_SERVER=" + up.api}
	out, progress, err := paveSplit(t, env, "run", "plain", "--version", "v1", "--source", src, "--replicas", "1", "-o", "json")
	if err != nil {
		t.Fatalf("pave run: %v\n%s\n%s\n%s", err, out, progress, up.out)
	}
	var st runtime.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Ready != 1 {
		t.Fatalf("pave run -o json: %v %q", err, out)
	}
	t.Cleanup(func() {
		for _, in := range st.Instances {
			_ = syscall.Kill(-in.PID, syscall.SIGKILL)
		}
	})

	groups := func() string {
		resp, err := http.Get(up.api + "/api/v1/rules")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor := func(what string, cond func() (bool, string)) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			var ok bool
			if ok, last = cond(); ok {
				return
			}
		}
		t.Fatalf("%s; last: %s\n%s", what, last, up.out)
	}
	waitFor("the service's SLO rules and the platform's are loaded", func() (bool, string) {
		g := groups()
		return strings.Contains(g, `"pave-slo-plain"`) && strings.Contains(g, `"ErrorBudgetBurn"`) && strings.Contains(g, `"Watchdog"`), g
	})
	waitFor("the probes are scraped: the 200 one succeeds, the one expecting 201 fails", func() (bool, string) {
		q, err := pave(t, env, "metrics", "query", `pave_probe_success{service="plain"}`, "-o", "json")
		return err == nil && probeValue(q, "GET /v1/ping") == "1" && probeValue(q, "GET /v1/created") == "0", q
	})
	// A service without kit has no /metrics: that is not a scrape fault.
	if g := groups(); strings.Contains(g, `"alertname":"ServiceScrapeFailing"`) {
		t.Errorf("ServiceScrapeFailing is pending or firing for a service that never served /metrics:\n%s", g)
	}
	if out, err := pave(t, env, "stop", "plain"); err != nil {
		t.Fatalf("pave stop: %v\n%s", err, out)
	}
	waitFor("a stopped service loses its rules", func() (bool, string) {
		g := groups()
		return !strings.Contains(g, "pave-slo-plain") && strings.Contains(g, "Watchdog"), g
	})
}

// probeValue is the value of the route's sample in a `pave metrics query
// -o json` answer ("" when absent).
func probeValue(answer, route string) string {
	var v struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		} `json:"result"`
	}
	if json.Unmarshal([]byte(answer), &v) != nil {
		return ""
	}
	for _, r := range v.Result {
		if r.Metric["route"] == route && len(r.Value) == 2 {
			s, _ := r.Value[1].(string)
			return s
		}
	}
	return ""
}
