package metrics

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScrapeAndQueryWithPromtool scrapes a real client_golang target with
// Prometheus' scrape manager and queries it through the HTTP API with
// Debian's promtool, the way an operator would.
func TestScrapeAndQueryWithPromtool(t *testing.T) {
	t.Parallel()
	promtool := tool(t, "promtool")
	target := newKitLikeTarget(t, "v2")
	s, api := openStore(t, Options{})
	s.SetTargets(JobServices, []Target{{Address: target.addr(), Labels: map[string]string{
		"service": "pay", "version": "v2", "instance": "pay-v2-0", "cluster": "local"}}})
	s.SetTargets(JobGateway, []Target{{Address: "127.0.0.1:1", Labels: map[string]string{"cluster": "local"}}}) // refuses connections

	eventually(t, 20*time.Second, "two scrapes of the target", func() (bool, string) {
		n, v := instantValue(t, api.URL, `count_over_time(up{job="services",service="pay",version="v2",instance="pay-v2-0",cluster="local"}[1m])`)
		return n == 1 && v >= "2", v
	})
	target.requests.WithLabelValues("/pay", "GET", "2xx").Add(100)

	out, err := exec.Command(promtool, "query", "instant", api.URL, `http_server_requests_total{service="pay",status_class="5xx"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool query instant: %v\n%s", err, out)
	}
	for _, want := range []string{`service="pay"`, `version="v2"`, `cluster="local"`, `=> 1 @[`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("promtool instant output lacks %s:\n%s", want, out)
		}
	}
	now := time.Now()
	out, err = exec.Command(promtool, "query", "range", "--start", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10),
		"--end", strconv.FormatInt(now.Unix(), 10), "--step", "1s", api.URL, `up{job="gateway"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool query range: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "0 @[") || strings.Contains(string(out), "1 @[") {
		t.Errorf("the refusing gateway target should be up 0 at every step:\n%s", out)
	}

	// Targets: one up with no error, one down naming the reason.
	var td TargetsData
	_, a := getAPI(t, api.URL, "/api/v1/targets", nil)
	if err := json.Unmarshal(a.Data, &td); err != nil {
		t.Fatal(err)
	}
	health := map[string]TargetStatus{}
	for _, ts := range td.ActiveTargets {
		health[ts.ScrapePool] = ts
	}
	if h := health[JobServices]; h.Health != "up" || h.Labels["service"] != "pay" || h.LastError != "" {
		t.Errorf("services target: %+v", h)
	}
	if h := health[JobGateway]; h.Health != "down" || !strings.Contains(h.LastError, "connection refused") {
		t.Errorf("gateway target should be down with its reason: %+v", h)
	}

	// Series, labels, label values, metadata, federate.
	_, a = getAPI(t, api.URL, "/api/v1/series", url.Values{"match[]": {`http_server_requests_total{service="pay"}`}})
	var series []map[string]string
	if err := json.Unmarshal(a.Data, &series); err != nil || len(series) != 2 {
		t.Errorf("series: %v %s", err, a.Data)
	}
	_, a = getAPI(t, api.URL, "/api/v1/labels", nil)
	if !strings.Contains(string(a.Data), `"status_class"`) || !strings.Contains(string(a.Data), `"cluster"`) {
		t.Errorf("labels: %s", a.Data)
	}
	_, a = getAPI(t, api.URL, "/api/v1/label/version/values", url.Values{"match[]": {"http_server_requests_total"}})
	if string(a.Data) != `["v2"]` {
		t.Errorf("version values: %s (want [\"v2\"]: honour the version kit exposes, not exported_version)", a.Data)
	}
	_, a = getAPI(t, api.URL, "/api/v1/metadata", url.Values{"metric": {"http_server_requests_total"}})
	if !strings.Contains(string(a.Data), `"type":"counter"`) || !strings.Contains(string(a.Data), "HTTP requests served.") {
		t.Errorf("metadata: %s", a.Data)
	}
	resp, err := http.Get(api.URL + "/federate?" + url.Values{"match[]": {`{service="pay"}`}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	fed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(fed), `http_server_requests_total{cluster="local",instance="pay-v2-0",job="services",method="GET",route="/pay",service="pay",status_class="5xx",version="v2"} 1 `) {
		t.Errorf("federate:\n%s", fed)
	}

	// A form POST reads like a GET (Grafana's default method).
	resp, err = http.PostForm(api.URL+"/api/v1/query", url.Values{"query": {`sum(http_server_requests_total{service="pay"})`}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"resultType":"vector"`) {
		t.Errorf("POST query: %d %s", resp.StatusCode, body)
	}
}

// TestQueryErrorsHavePrometheusShape: bad PromQL is 400 bad_data, a query
// over the sample limit is 422 execution, never a crash.
func TestQueryErrorsHavePrometheusShape(t *testing.T) {
	t.Parallel()
	target := newKitLikeTarget(t, "v1")
	s, api := openStore(t, Options{QueryMaxSamples: 10})
	s.SetTargets(JobServices, []Target{{Address: target.addr(), Labels: map[string]string{"service": "pay"}}})
	eventually(t, 20*time.Second, "a scrape", func() (bool, string) {
		n, _ := instantValue(t, api.URL, `up{service="pay"}`)
		return n == 1, ""
	})
	for _, c := range []struct {
		name    string
		path    string
		q       url.Values
		code    int
		typ, in string
	}{
		{"syntax", "/api/v1/query", url.Values{"query": {"sum(rate(x[5m]"}}, 400, "bad_data", "parse error"},
		{"too many samples", "/api/v1/query", url.Values{"query": {`count_over_time({service="pay"}[10m])`}}, 422, "execution", "query processing would load too many samples"},
		{"bad time", "/api/v1/query", url.Values{"query": {"up"}, "time": {"yesterday"}}, 400, "bad_data", "yesterday"},
		{"bad step", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"1"}, "end": {"2"}, "step": {"0"}}, 400, "bad_data", "step"},
		{"series without match", "/api/v1/series", nil, 400, "bad_data", "match[]"},
		{"match everything", "/api/v1/series", url.Values{"match[]": {`{job=~".*"}`}}, 400, "bad_data", "non-empty matcher"},
	} {
		code, a := getAPI(t, api.URL, c.path, c.q)
		if code != c.code || a.Status != "error" || a.ErrorType != c.typ || !strings.Contains(a.Error, c.in) {
			t.Errorf("%s: got %d %s/%s %q; want %d %s containing %q", c.name, code, a.Status, a.ErrorType, a.Error, c.code, c.typ, c.in)
		}
	}
}
