package metrics

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hangingTarget accepts a scrape and never answers it: the scraper's
// timeout has to end the request.
func hangingTarget(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done(): // the scraper gave up
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler outlives the test
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestTargetThatTimesOutIsDownAndStallsNothing: targets that never answer
// are down with the timeout as their error and up == 0, after a scrape
// that lasted the scrape timeout; a healthy target in the same pool keeps
// being scraped every interval, quickly, while they hang. Five hanging
// targets: were their scrapes serialized with the healthy one's, it would
// be scraped at most once every six intervals.
func TestTargetThatTimesOutIsDownAndStallsNothing(t *testing.T) {
	good := newKitLikeTarget(t, "v1")
	s, api := openStore(t, Options{ScrapeInterval: time.Second}) // timeout: 1s
	ts := []Target{{Address: good.addr(), Labels: map[string]string{"service": "good"}}}
	for i := range 5 {
		ts = append(ts, Target{Address: hangingTarget(t), Labels: map[string]string{"service": "slow" + strconv.Itoa(i)}})
	}
	s.SetTargets(JobServices, ts)

	slowDown := func() (bool, string) {
		var td TargetsData
		_, a := getAPI(t, api.URL, "/api/v1/targets", nil)
		if err := json.Unmarshal(a.Data, &td); err != nil {
			t.Fatal(err)
		}
		down := 0
		for _, st := range td.ActiveTargets {
			if strings.HasPrefix(st.Labels["service"], "slow") && st.Health == "down" {
				if !strings.Contains(st.LastError, "deadline exceeded") && !strings.Contains(st.LastError, "timeout") {
					t.Fatalf("a target that timed out should say so: %+v", st)
				}
				// The scrape lasted the timeout (1s), not the interval of
				// a later one; generous above for a loaded machine.
				if st.LastScrapeDuration < 0.9 || st.LastScrapeDuration > 5 {
					t.Errorf("scrape of a hanging target took %.2fs, want about the 1s timeout", st.LastScrapeDuration)
				}
				down++
			}
		}
		return down == 5, string(a.Data)
	}
	eventually(t, 30*time.Second, "the five hanging targets down with a timeout", slowDown)
	if n, v := instantValue(t, api.URL, `sum(up{service=~"slow.*"})`); n != 1 || v != "0" {
		t.Errorf("up of the hanging targets: %d series, sum %q; want 0", n, v)
	}

	// Ten intervals with the five hanging throughout: the healthy target
	// was scraped on schedule (about ten times, allowing a loaded
	// machine half), never near the timeout, and was up each time.
	time.Sleep(10 * time.Second)
	if _, v := instantValue(t, api.URL, `count_over_time(up{service="good"}[10s])`); v == "" || atof(t, v) < 5 {
		t.Errorf("the healthy target was scraped %q times in 10 s beside five hanging ones; want about 10", v)
	}
	if _, v := instantValue(t, api.URL, `min_over_time(up{service="good"}[10s])`); v != "1" {
		t.Errorf("the healthy target was down beside the hanging ones: min(up) = %q", v)
	}
	if _, v := instantValue(t, api.URL, `max_over_time(scrape_duration_seconds{service="good"}[10s])`); v == "" || atof(t, v) >= 0.9 {
		t.Errorf("the healthy target's slowest scrape took %ss beside the hanging ones", v)
	}
	if _, v := instantValue(t, api.URL, `count_over_time(up{service="slow0"}[10s])`); v == "" || atof(t, v) < 5 {
		t.Errorf("a hanging target must still be tried every interval: %q tries in 10 s", v)
	}
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return f
}
