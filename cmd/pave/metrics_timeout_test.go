package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/metrics"
)

// TestMetricsTargetsShowsATargetThatTimesOut: `pave metrics targets`
// against the store's real API shows a target that never answers as down
// with the scrape timeout as its error, beside a healthy one that is up;
// the table says it too.
func TestMetricsTargetsShowsATargetThatTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("# TYPE kit_up gauge\nkit_up 1\n"))
	}))
	defer good.Close()

	s, err := metrics.Open(metrics.Options{Dir: t.TempDir(), ScrapeInterval: time.Second}) // timeout 1s
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		s.Close()
	}()
	addr := func(u string) string { return strings.TrimPrefix(u, "http://") }
	s.SetTargets(metrics.JobServices, []metrics.Target{
		{Address: addr(hang.URL), Labels: map[string]string{"service": "stuck", "instance": "stuck-v1-0"}},
		{Address: addr(good.URL), Labels: map[string]string{"service": "fine", "instance": "fine-v1-0"}},
	})
	api := httptest.NewServer(s.API())
	defer api.Close()
	env := []string{"PAVE_SERVER=" + api.URL}

	var byService map[string]metricsTarget
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, _, err := paveSplit(t, env, "metrics", "targets", "-o", "json")
		if err != nil {
			t.Fatalf("pave metrics targets -o json: %v\n%s", err, out)
		}
		var ts []metricsTarget
		if err := json.Unmarshal([]byte(out), &ts); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		byService = map[string]metricsTarget{}
		for _, tg := range ts {
			byService[tg.Labels["service"]] = tg
		}
		if byService["stuck"].Health == "down" && byService["fine"].Health == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the stuck target down and the fine one up: %s", out)
		}
	}
	if e := byService["stuck"].LastError; !strings.Contains(e, "deadline exceeded") && !strings.Contains(e, "timeout") {
		t.Errorf("the stuck target's error should name the timeout: %q", e)
	}
	text, err := pave(t, env, "metrics", "targets")
	if err != nil {
		t.Fatalf("pave metrics targets: %v\n%s", err, text)
	}
	var stuck string
	for line := range strings.Lines(text) {
		if strings.Contains(line, "stuck-v1-0") {
			stuck = line
		}
	}
	if !strings.Contains(stuck, "down") || !strings.Contains(stuck, "deadline exceeded") && !strings.Contains(stuck, "timeout") {
		t.Errorf("the table's row of the stuck target should say down and why: %q\n%s", stuck, text)
	}
	if out, err := pave(t, env, "metrics", "query", `up{service="stuck"}`); err != nil || !strings.Contains(out, " 0") {
		t.Errorf("up of the stuck target should be 0: %v\n%s", err, out)
	}
}
