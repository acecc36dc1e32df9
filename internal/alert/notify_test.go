package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// webhookMessage is the part of Alertmanager's webhook JSON (version 4)
// the tests read.
type webhookMessage struct {
	Version  string `json:"version"`
	GroupKey string `json:"groupKey"`
	Receiver string `json:"receiver"`
	Status   string `json:"status"`
	Alerts   []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
	GroupLabels map[string]string `json:"groupLabels"`
}

// TestWebhookDownThenUpAcrossARestart: the webhook receiver is down when
// the alert fires; the outbox retries with backoff and shows the failed
// attempts; the engine is stopped and a new one started on the same
// directory with NO rules (so nothing fires again): the notification
// from before the restart is delivered once the receiver is up, in
// Alertmanager's webhook JSON.
func TestWebhookDownThenUpAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	hook := freeAddr(t)
	amConfig := writeFile(t, filepath.Join(dir, "alerting.yml"), `route:
  receiver: none
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
  routes:
  - matchers: [alertname="OrdersDown"]
    receiver: hook
    group_by: [service]
receivers:
- name: none
- name: hook
  webhook_configs:
  - url: http://`+hook+`/hook
    send_resolved: false
`)
	ruleFile := writeFile(t, filepath.Join(dir, "orders.rules.yml"), `groups:
- name: orders
  interval: 200ms
  rules:
  - alert: OrdersDown
    expr: vector(1)
    labels: {service: orders, severity: page}
    annotations: {summary: orders is down}
`)
	alertDir := filepath.Join(dir, "alerting")
	e1 := startEngine(t, st, Options{Dir: alertDir, ConfigFile: amConfig, RuleFiles: []string{ruleFile}})
	eventually(t, 15*time.Second, "a failed delivery attempt to the webhook that is down", func() (bool, string) {
		for _, d := range e1.Deliveries() {
			if d.Receiver == "hook" && d.State == "pending" && d.Attempts >= 2 && strings.Contains(d.LastError, "connection refused") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", e1.Deliveries())
	})
	e1.stop(t)
	files, _ := filepath.Glob(filepath.Join(alertDir, "outbox", "*.json"))
	if len(files) != 1 {
		t.Fatalf("outbox after stop: %v, want the one undelivered notification", files)
	}

	// The receiver comes back; a new engine, without the rule, starts.
	var mu sync.Mutex
	var got []webhookMessage
	ln, err := net.Listen("tcp", hook)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m webhookMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body is not Alertmanager's JSON: %v: %s", err, b)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})}
	go hs.Serve(ln)
	defer hs.Close()
	e2 := startEngine(t, st, Options{Dir: alertDir, ConfigFile: amConfig})
	defer e2.stop(t)
	eventually(t, 15*time.Second, "the notification from before the restart delivered", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0, ""
	})
	mu.Lock()
	m := got[0]
	mu.Unlock()
	if m.Version != "4" || m.Receiver != "hook" || m.Status != "firing" || len(m.Alerts) != 1 || m.Alerts[0].Labels["alertname"] != "OrdersDown" ||
		m.Alerts[0].Annotations["summary"] != "orders is down" || m.GroupLabels["service"] != "orders" || m.GroupKey == "" {
		t.Fatalf("webhook message = %+v", m)
	}
	var delivered bool
	for _, d := range e2.Deliveries() {
		if d.State == "delivered" && d.Attempts >= 3 && d.Receiver == "hook" { // two failed before the restart, one after
			delivered = true
		}
	}
	if !delivered {
		t.Fatalf("deliveries after the restart: %+v", e2.Deliveries())
	}
	if files, _ := filepath.Glob(filepath.Join(alertDir, "outbox", "*.json")); len(files) != 0 {
		t.Fatalf("outbox still holds %v after delivery", files)
	}
}

// TestExternalAlertmanagerReceivesAlerts sends to a real Alertmanager
// (Debian's prometheus-alertmanager) over API v2 and reads the alert back
// from its /api/v2/alerts.
func TestExternalAlertmanagerReceivesAlerts(t *testing.T) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatal("prometheus-alertmanager is not installed: run `bash scripts/deps.sh` (Debian package prometheus-alertmanager)")
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "am.yml"), "route:\n  receiver: none\nreceivers:\n- name: none\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	logf, _ := os.Create(filepath.Join(dir, "am.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	eventually(t, 30*time.Second, "Alertmanager ready", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		b, _ := os.ReadFile(filepath.Join(dir, "am.log"))
		return resp.StatusCode == http.StatusOK, string(b)
	})

	st := openStore(t, dir)
	defer st.Close()
	ruleFile := writeFile(t, filepath.Join(dir, "x.rules.yml"), `groups:
- name: x
  interval: 200ms
  rules:
  - alert: PaymentsDown
    expr: vector(1)
    labels: {service: payments, severity: page}
    annotations: {runbook_url: https://runbooks.example/payments}
`)
	e := startEngine(t, st, Options{Dir: filepath.Join(dir, "alerting"), RuleFiles: []string{ruleFile}, Alertmanagers: []string{"http://" + addr}})
	defer e.stop(t)
	eventually(t, 10*time.Second, "the external Alertmanager listed", func() (bool, string) {
		got := e.ExternalAlertmanagers()
		return len(got) == 1 && strings.Contains(got[0], addr+"/api/v2/alerts"), fmt.Sprint(got)
	})
	eventually(t, 30*time.Second, "PaymentsDown and Watchdog in the real Alertmanager's /api/v2/alerts", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/api/v2/alerts")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var alerts []struct {
			Labels       map[string]string `json:"labels"`
			Annotations  map[string]string `json:"annotations"`
			GeneratorURL string            `json:"generatorURL"`
			Status       struct {
				State string `json:"state"`
			} `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
			return false, err.Error()
		}
		var pay, dog bool
		for _, a := range alerts {
			if a.Labels["alertname"] == "PaymentsDown" && a.Labels["service"] == "payments" && a.Status.State == "active" &&
				a.Annotations["runbook_url"] == "https://runbooks.example/payments" {
				pay = true
			}
			dog = dog || a.Labels["alertname"] == "Watchdog"
		}
		return pay && dog, fmt.Sprintf("%+v", alerts)
	})
}
