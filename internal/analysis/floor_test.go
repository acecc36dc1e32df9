package analysis

import (
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

// A canary that is certainly, but only negligibly, slower (a fresh process
// at sub-millisecond latencies) passes; a real shift still fails.
func TestLatencyFloor(t *testing.T) {
	c := DefaultConfig()
	build := func(ms float64, n int) stats.Counts {
		var s stats.Counts
		for i := 0; i < n; i++ {
			s.Observe(200, ms+float64(i%10)*0.01)
		}
		return s
	}
	stable := build(0.4, 5000)
	judge := func(c Config, canary stats.Counts, final bool) Finding {
		return c.latencyFinding(TotalScope, latencyLogE(canary, stable), c.alphaTotal(NewEvidence(1)), canary, stable, final)
	}
	if f := judge(c, build(0.9, 500), true); f.Verdict != Pass {
		t.Fatalf("0.5 ms slower: %s (%s), want pass below the floor", f.Verdict, f.Reason)
	}
	if f := judge(c, build(60, 500), false); f.Verdict != Fail {
		t.Fatalf("60 ms slower: %s (%s), want fail", f.Verdict, f.Reason)
	}
	c.LatencyFloorMs = 0
	if f := judge(c, build(0.9, 500), false); f.Verdict != Fail {
		t.Fatalf("floor disabled, 0.5 ms slower: %s (%s), want fail", f.Verdict, f.Reason)
	}
	c.LatencyFloorMs = -1
	if err := c.Validate(); err == nil {
		t.Fatal("negative floor accepted")
	}
}
