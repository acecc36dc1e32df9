package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// instantAt answers the single value of expr at time at from the metrics
// API of the control plane at api ("" when there is no result).
func instantAt(t *testing.T, api, expr string, at time.Time) (string, error) {
	t.Helper()
	q := url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	resp, err := http.Get(api + "/api/v1/query?" + q.Encode())
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var a struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return "", err
	}
	if a.Status != "success" {
		return "", fmt.Errorf("%s: %s", a.Status, a.Error)
	}
	if len(a.Data.Result) == 0 {
		return "", nil
	}
	return fmt.Sprint(a.Data.Result[0].Value[1]), nil
}

// TestKillNineOfPaveUpKeepsScrapedSamples: `pave up` scrapes a running
// service (examples/hello, built and run by pave) every second; the
// samples a query has answered are acknowledged. kill -9 of the whole
// process, a new `pave up` on the same data directory: the same query at
// the same time answers the same count (the WAL replayed), the service
// is adopted and scraped again (new samples after the restart).
func TestKillNineOfPaveUpKeepsScrapedSamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/hello; run without -short")
	}
	t.Parallel() // its own pave up, ports and directories; it mostly waits
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	up := startUp(t, data, "--metrics-scrape-interval", "1s", "--run-roots", repo)
	env := []string{"PAVE_SERVER=" + up.api}
	if out, err := pave(t, env, "run", "hello", "--version", "v1", "--source", filepath.Join(repo, "examples", "hello")); err != nil {
		t.Fatalf("pave run: %v\n%s\n%s", err, out, up.out)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_, _ = pave(t, env, "stop", "hello")
		}
	})

	const expr = `sum(count_over_time(up{service="hello",job="services"}[1h]))`
	var acked time.Time
	var count string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		acked = time.Now()
		count, err = instantAt(t, up.api, expr, acked)
		if n, _ := strconv.Atoi(count); err == nil && n >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hello was not scraped 10 times: %q %v\n%s", count, err, up.out)
		}
	}
	// Scrapes go on between the query and the kill.
	time.Sleep(1500 * time.Millisecond)
	if err := up.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-up.done
	killed := time.Now()
	t.Logf("%s = %s at %s; killed with SIGKILL %s later", expr, count, acked.Format(time.RFC3339Nano), killed.Sub(acked).Round(time.Millisecond))

	again := startUp(t, data, "--metrics-scrape-interval", "1s", "--run-roots", repo)
	env = []string{"PAVE_SERVER=" + again.api}
	t.Cleanup(func() {
		if out, err := pave(t, env, "stop", "hello"); err != nil {
			t.Errorf("pave stop hello: %v\n%s", err, out)
		}
		stopped = true
	})
	got, err := instantAt(t, again.api, expr, acked)
	if err != nil || got != count {
		t.Fatalf("after kill -9 and restart, %s at the acknowledged time = %q (%v), want %s\n%s", expr, got, err, count, again.out)
	}
	// The service kept running and is scraped again by the new process.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		v, err := instantAt(t, again.api, `max(timestamp(up{service="hello",job="services"}))`, time.Now())
		ts, _ := strconv.ParseFloat(v, 64)
		if err == nil && ts > float64(killed.Unix())+1 {
			if up, _ := instantAt(t, again.api, `max(up{service="hello",job="services"})`, time.Now()); up != "1" {
				t.Fatalf("hello is scraped but down after the restart: up=%q\n%s", up, again.out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scraping did not resume after the restart: last sample at %q (%v), killed at %d\n%s", v, err, killed.Unix(), again.out)
		}
	}
}
