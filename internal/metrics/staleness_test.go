package metrics

import (
	"testing"
	"time"
)

// TestRemovedTargetEndsItsSeries: against the real TSDB and engine, a
// target that leaves the runtime stops answering instant queries at once
// after its stale markers (not five minutes later, the lookback), while
// its past samples stay queryable; a target that stays is untouched.
func TestRemovedTargetEndsItsSeries(t *testing.T) {
	gone, stays := newKitLikeTarget(t, "v1"), newKitLikeTarget(t, "v2")
	s, api := openStore(t, Options{ScrapeInterval: time.Second})
	both := []Target{
		{Address: gone.addr(), Labels: map[string]string{"service": "gone"}},
		{Address: stays.addr(), Labels: map[string]string{"service": "stays"}},
	}
	s.SetTargets(JobServices, both)
	eventually(t, 30*time.Second, "both targets up", func() (bool, string) {
		n, v := instantValue(t, api.URL, `sum(up{job="services"})`)
		return n == 1 && v == "2", v
	})
	s.SetTargets(JobServices, both[1:])
	eventually(t, 30*time.Second, "the removed target's series ended", func() (bool, string) {
		n, _ := instantValue(t, api.URL, `up{service="gone"}`)
		m, _ := instantValue(t, api.URL, `http_server_requests_total{service="gone"}`)
		return n == 0 && m == 0, ""
	})
	if n, v := instantValue(t, api.URL, `count_over_time(up{service="gone"}[5m])`); n != 1 || atof(t, v) < 1 {
		t.Errorf("the removed target's past samples: %d series, %q", n, v)
	}
	if n, v := instantValue(t, api.URL, `up{service="stays"}`); n != 1 || v != "1" {
		t.Errorf("the target that stays: %d series, up %q", n, v)
	}
	if td := s.Targets(); len(td) != 1 || td[0].Labels["service"] != "stays" {
		t.Errorf("active targets: %+v", td)
	}
}
