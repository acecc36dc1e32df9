package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMetricsScrapeGeneratedService: a service from `pave new` runs under
// `pave up`; the embedded store scrapes its instance (labelled service,
// version, instance, cluster), the gateway and Pave itself; `pave metrics
// query` and `pave metrics targets` read them; and every query of the
// generated Grafana dashboard runs unchanged against Pave's API.
func TestMetricsScrapeGeneratedService(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds a generated service; run without -short")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(repo, "kit"), filepath.Join(work, "kit")); err != nil {
		t.Fatal(err)
	}
	gen := exec.Command(paveBin(), "new", "orders")
	gen.Dir = work
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("pave new: %v\n%s", err, out)
	}
	gw := freeAddr(t)
	up := startUp(t, t.TempDir(), "--gateway-addr", gw, "--metrics-scrape-interval", "1s", "--run-roots", work)
	env := []string{"PAVE_SERVER=" + up.api}
	t.Cleanup(func() {
		if out, err := pave(t, env, "stop", "orders"); err != nil {
			t.Errorf("pave stop orders: %v\n%s", err, out)
		}
		_ = up.cmd.Process.Signal(syscall.SIGTERM)
	})
	if out, err := pave(t, env, "run", "orders", "--version", "v1", "--source", filepath.Join(work, "orders")); err != nil {
		t.Fatalf("pave run: %v\n%s\n%s", err, out, up.out)
	}
	for range 40 {
		if code, body := viaGateway(t, gw, "orders.localhost"); code == 0 {
			t.Fatalf("gateway: %s", body)
		}
	}

	var last string
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _, err := paveSplit(t, env, "metrics", "query", `sum by (service, version, instance, cluster, job) (http_server_requests_total{service="orders"})`, "-o", "json")
		last = out
		var qd struct {
			Result []promSeries `json:"result"`
		}
		if err == nil && json.Unmarshal([]byte(out), &qd) == nil && len(qd.Result) == 1 {
			m, v := qd.Result[0].Metric, qd.Result[0].Value
			if m["instance"] == "orders-v1-0" && m["cluster"] == "local" && m["version"] == "v1" && m["job"] == "services" && len(v) == 2 && v[1] == "40" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance's 40 requests never showed in the store: %v\n%s\n%s", err, out, up.out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("pave metrics query -o json: %s", last)

	// Each pool's first scrape comes at its own offset within the
	// interval, so a pool may not have been scraped yet.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, _, err := paveSplit(t, env, "metrics", "targets", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var targets []metricsTarget
		if err := json.Unmarshal([]byte(out), &targets); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		up1 := map[string]bool{}
		for _, tg := range targets {
			if tg.Health == "up" && !tg.LastScrape.IsZero() {
				up1[tg.Pool] = true
			}
		}
		if up1["services"] && up1["gateway"] && up1["pave"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want services, gateway and pave targets up: %s", out)
		}
	}
	text, err := pave(t, env, "metrics", "targets")
	if err != nil || !strings.Contains(text, "orders-v1-0") || !strings.Contains(text, "HEALTH") {
		t.Errorf("pave metrics targets: %v\n%s", err, text)
	}
	// The gateway's per-version counters are there too.
	if out, err := pave(t, env, "metrics", "query", `count({job="gateway",cluster="local"})`); err != nil || strings.Contains(out, "no data") {
		t.Errorf("gateway series: %v %s", err, out)
	}
	// A syntax error is the API's bad_data, said plainly, exit status 1.
	if out, err := pave(t, env, "metrics", "query", "sum(rate(x[5m]"); err == nil || !strings.Contains(out, "parse error") {
		t.Errorf("bad PromQL: %v %s", err, out)
	}

	// rate() over the dashboard's window needs a few scrapes at 1 s.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, _ := pave(t, env, "metrics", "query", `count_over_time(up{service="orders"}[1m]) >= 5`)
		if !strings.Contains(out, "no data") || time.Now().After(deadline) {
			break
		}
	}
	checkDashboard(t, up.api, filepath.Join(work, "orders", "observability", "dashboard.json"))
}

// checkDashboard runs every query of the generated dashboard the way
// Grafana's Prometheus data source sends it (form POST of query_range,
// label values for the variable) with its variables filled in.
func checkDashboard(t *testing.T, api, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Name, Query string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	// label_values(SELECTOR, LABEL) is /api/v1/label/LABEL/values?match[]=SELECTOR.
	for _, v := range dash.Templating.List {
		inner, ok := strings.CutPrefix(v.Query, "label_values(")
		if !ok {
			continue
		}
		sel, label, _ := strings.Cut(strings.TrimSuffix(inner, ")"), ", ")
		resp, err := http.Get(api + "/api/v1/label/" + label + "/values?" + url.Values{"match[]": {sel}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var a struct{ Data []string }
		_ = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if len(a.Data) != 1 || a.Data[0] != "v1" {
			t.Errorf("variable %s: %v, want [v1]", v.Name, a.Data)
		}
	}
	// Kubernetes panels (cAdvisor, kube-state-metrics) and the SLO panels
	// (recording rules, which Pave does not evaluate yet) are valid PromQL
	// with no data in embedded mode; the RED panels must have data (the
	// error ratio only when there were 5xx answers).
	needData := func(expr string) bool {
		return strings.Contains(expr, "http_server_") && !strings.Contains(expr, `status_class=\"5xx\"`) && !strings.Contains(expr, `status_class="5xx"`)
	}
	now := time.Now()
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			expr := strings.NewReplacer("$version", ".*", "$__rate_interval", "1m").Replace(tg.Expr)
			form := url.Values{"query": {expr}, "start": {fmt.Sprint(now.Add(-5 * time.Minute).Unix())}, "end": {fmt.Sprint(now.Unix())}, "step": {"15"}}
			resp, err := http.PostForm(api+"/api/v1/query_range", form)
			if err != nil {
				t.Fatal(err)
			}
			var a struct {
				Status string
				Error  string
				Data   struct{ Result []json.RawMessage }
			}
			_ = json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			queries++
			if a.Status != "success" {
				t.Errorf("panel %q: %s: %s", p.Title, expr, a.Error)
			} else if needData(expr) && len(a.Data.Result) == 0 {
				t.Errorf("panel %q: no data for %s", p.Title, expr)
			}
		}
	}
	if queries < 4 {
		t.Fatalf("the dashboard had %d queries; the test read it wrong", queries)
	}
}
