package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestOversizedAndGarbageTargetsAreMarkedDown: a target over the sample
// limit and one answering garbage are down with the reason; a healthy
// target beside them keeps being scraped, and nothing of the oversized
// scrape is kept.
func TestOversizedAndGarbageTargetsAreMarkedDown(t *testing.T) {
	t.Parallel()
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		for i := range 5000 {
			fmt.Fprintf(&b, "big_series{n=\"%d\"} 1\n", i)
		}
		w.Write([]byte(b.String()))
	}))
	defer big.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("this is { not the exposition format\n"))
	}))
	defer garbage.Close()
	good := newKitLikeTarget(t, "v1")
	s, api := openStore(t, Options{SampleLimit: 1000})
	addr := func(u string) string { return strings.TrimPrefix(u, "http://") }
	s.SetTargets(JobServices, []Target{
		{Address: addr(big.URL), Labels: map[string]string{"service": "big"}},
		{Address: addr(garbage.URL), Labels: map[string]string{"service": "garbage"}},
		{Address: good.addr(), Labels: map[string]string{"service": "good"}},
	})
	// Each target's scrapes start at its own offset in the interval, and
	// on a loaded machine one may finish well after another's third: wait
	// for a finished scrape of every target too.
	var td TargetsData
	eventually(t, 60*time.Second, "three scrapes of the good target and one of each other", func() (bool, string) {
		_, v := instantValue(t, api.URL, `count_over_time(up{service="good"}[1m])`)
		td = TargetsData{}
		_, a := getAPI(t, api.URL, "/api/v1/targets", nil)
		if err := json.Unmarshal(a.Data, &td); err != nil {
			t.Fatal(err)
		}
		for _, ts := range td.ActiveTargets {
			if ts.LastScrape.IsZero() {
				return false, string(a.Data)
			}
		}
		return len(td.ActiveTargets) == 3 && v != "" && atof(t, v) >= 3, v
	})
	byService := map[string]TargetStatus{}
	for _, ts := range td.ActiveTargets {
		byService[ts.Labels["service"]] = ts
	}
	if b := byService["big"]; b.Health != "down" || !strings.Contains(b.LastError, "sample limit") {
		t.Errorf("oversized target: %+v", b)
	}
	if g := byService["garbage"]; g.Health != "down" || g.LastError == "" {
		t.Errorf("garbage target: %+v", g)
	}
	if g := byService["good"]; g.Health != "up" {
		t.Errorf("good target: %+v", g)
	}
	if n, _ := instantValue(t, api.URL, `count(big_series)`); n != 0 {
		t.Errorf("samples of the scrape over the limit were kept")
	}
}
