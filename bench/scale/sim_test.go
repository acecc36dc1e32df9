package main

import (
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/traffic"
)

// The two versions of a healthy service answer alike: the same latency
// and error rate, whatever their weights.
func TestSimHealthyVersionsAlike(t *testing.T) {
	s := newSim(2000, 3)
	s.seed("a", "v1")
	_ = s.setWeights("t", "a", traffic.Weights{"v1": 990_000, "v2": 10_000})
	t0 := time.Now()
	for i := 1; i <= 2000; i++ {
		s.mu.Lock()
		s.advance("a", t0.Add(time.Duration(i)*50*time.Millisecond))
		s.mu.Unlock()
	}
	snap := s.snapshot("a")
	v1, v2 := snap["v1"].Total, snap["v2"].Total
	t.Logf("v1 %d req p50 %.1f p99 %.1f err %.4f; v2 %d req p50 %.1f p99 %.1f err %.4f", v1.Requests, v1.Quantile(0.5), v1.Quantile(0.99), v1.ErrorRate(),
		v2.Requests, v2.Quantile(0.5), v2.Quantile(0.99), v2.ErrorRate())
	if d := v2.Quantile(0.5) / v1.Quantile(0.5); d < 0.9 || d > 1.1 {
		t.Fatalf("canary p50 %.1f vs stable %.1f", v2.Quantile(0.5), v1.Quantile(0.5))
	}
}
