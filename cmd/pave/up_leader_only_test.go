package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state/pgtest"
)

// webhookNote is what the test's receiver keeps of a notification.
type webhookNote struct {
	ExternalURL string `json:"externalURL"`
	GroupKey    string `json:"groupKey"`
	Status      string `json:"status"`
}

type webhookReceiver struct {
	mu    sync.Mutex
	notes []webhookNote
}

func (h *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n webhookNote
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.notes = append(h.notes, n)
	h.mu.Unlock()
}

func (h *webhookReceiver) got() []webhookNote {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhookNote(nil), h.notes...)
}

// runnerLines are the parents (pave up processes) of the runners started.
func runnerLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Two `pave up` replicas on one PostgreSQL: only the leader evaluates the
// rules and notifies (one notification, not one per replica), only the
// leader scales runner pools; the standby serves the alerting and runner
// APIs by forwarding to the leader, and takes a pool applied through it.
// After kill -9 of the leader the standby takes over: it notifies the
// still-firing alert once (at-least-once: the old leader's notification
// and its own carry the same group key, the receiver's de-duplication
// key), and it alone starts the pool's runners again.
func TestUpLeaderOnlyAlertsAndRunners(t *testing.T) {
	t.Parallel() // its own pave up, ports and directories; it mostly waits
	pg := pgtest.New(t)
	url := pg.Database(t)
	hook := &webhookReceiver{}
	hs := httptest.NewServer(hook)
	defer hs.Close()

	dir := t.TempDir()
	amConfig := filepath.Join(dir, "alerting.yaml")
	if err := os.WriteFile(amConfig, []byte(`route:
  receiver: none
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
  - matchers: [alertname="AlwaysFiring"]
    receiver: hook
receivers:
- name: none
- name: hook
  webhook_configs:
  - url: `+hs.URL+`/
    send_resolved: false
`), 0o600); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(`groups:
- name: ha
  interval: 1s
  rules:
  - alert: AlwaysFiring
    expr: vector(1)
    labels: {severity: ticket}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--state-store", url, "--leader-lease", "3s", "--alert-config", amConfig, "--rule-files", rules}
	a := startUp(t, t.TempDir(), args...)
	b := startUp(t, t.TempDir(), args...)

	var leader, standby *upProc
	waitFor(t, "one leader", 60*time.Second, func() bool {
		sa, errA := controlPlane(t, a.api)
		sb, errB := controlPlane(t, b.api)
		if errA != nil || errB != nil || sa.Replica.Leading == sb.Replica.Leading {
			return false
		}
		leader, standby = a, b
		if sb.Replica.Leading {
			leader, standby = b, a
		}
		return true
	})
	from := func(p *upProc) string { return p.api }

	// One notification, from the leader; the standby sends none.
	waitFor(t, "the leader's notification", 60*time.Second, func() bool { return len(hook.got()) >= 1 })
	time.Sleep(8 * time.Second) // a standby evaluating would have notified by now
	notes := hook.got()
	if len(notes) != 1 || notes[0].ExternalURL != from(leader) {
		t.Fatalf("want one notification from the leader %s, got %+v", leader.api, notes)
	}
	firstKey := notes[0].GroupKey

	// The standby answers the alerting API from the leader.
	resp, err := http.Get(standby.api + "/api/v1/alerting/alerts")
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	err = json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(view.Alerts) == 0 || view.Alerts[0].Labels["alertname"] != "AlwaysFiring" {
		t.Fatalf("alerts through the standby: %d %v %+v", resp.StatusCode, err, view)
	}

	// A runner pool applied through the standby: the leader alone runs it.
	marks := filepath.Join(dir, "runners")
	spec := filepath.Join(dir, "pool.yaml")
	if err := os.WriteFile(spec, []byte(`apiVersion: pave.dev/v1alpha1
kind: RunnerPool
metadata: {name: ha}
spec:
  labels: [self-hosted]
  min: 2
  max: 2
  target: {local: {command: [sh, -c, 'echo $PPID >> `+marks+`; exec sleep 600']}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := pave(t, []string{"PAVE_SERVER=" + standby.api}, "runners", "apply", "-f", spec); err != nil {
		t.Fatalf("pave runners apply through the standby: %v\n%s", err, out)
	}
	leaderPID := strconv.Itoa(leader.cmd.Process.Pid)
	standbyPID := strconv.Itoa(standby.cmd.Process.Pid)
	waitFor(t, "the leader's two runners", 60*time.Second, func() bool { return len(runnerLines(t, marks)) >= 2 })
	time.Sleep(12 * time.Second) // past the standby's reconcile interval (10 s), had it one
	if got := runnerLines(t, marks); len(got) != 2 || got[0] != leaderPID || got[1] != leaderPID {
		t.Fatalf("want two runners started by the leader (pid %s), got parents %v", leaderPID, got)
	}
	out, err := pave(t, []string{"PAVE_SERVER=" + standby.api}, "runners", "status", "-o", "json")
	if err != nil || !strings.Contains(out, `"ha"`) {
		t.Fatalf("pave runners status through the standby: %v\n%s", err, out)
	}

	// kill -9 the leader: the standby takes over, notifies once, runs the pool.
	_ = leader.cmd.Process.Kill()
	<-leader.done
	killed := time.Now()
	waitFor(t, "the standby's takeover", 30*time.Second, func() bool {
		st, err := controlPlane(t, standby.api)
		return err == nil && st.Replica.Leading
	})
	t.Logf("takeover in %s", time.Since(killed).Round(time.Millisecond))
	waitFor(t, "the new leader's notification", 60*time.Second, func() bool { return len(hook.got()) >= 2 })
	waitFor(t, "the new leader's runners", 60*time.Second, func() bool { return len(runnerLines(t, marks)) >= 4 })
	time.Sleep(8 * time.Second)
	notes = hook.got()
	if len(notes) != 2 || notes[1].ExternalURL != from(standby) || notes[1].GroupKey != firstKey {
		t.Fatalf("want the old leader's notification then one from the new leader %s with the same group key %q, got %+v", standby.api, firstKey, notes)
	}
	if got := runnerLines(t, marks); len(got) != 4 || got[2] != standbyPID || got[3] != standbyPID {
		t.Fatalf("want two more runners, started by the new leader (pid %s), got parents %v", standbyPID, got)
	}
}
